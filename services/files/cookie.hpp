// Stateless cookies for the files service's UDP open, as DNS cookies (RFC
// 7873) and QUIC's Retry token do it: before an open may cost the server a
// file, a transfer or a hash, the client proves that it receives datagrams at
// the address it sends from by echoing a cookie sent there. The server keeps
// no state per client, only a secret: a cookie is the second it was issued
// and a MAC of that second and the client's address and port, so a forged
// source address never sees one, and a cookie is good for one address for a
// short while only.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>

#include <switchboard/net.hpp>
#include <switchboard/time.hpp>

#include "protocol.hpp"

namespace switchboard::services::files {

class cookie_jar {
 public:
  // How long a cookie is accepted after it was issued.
  static constexpr std::chrono::seconds lifetime{120};

  // A jar with a fresh random secret: another jar's cookies are not valid here.
  cookie_jar();

  // The cookie for `client` issued at `now`.
  protocol::udp::cookie issue(const endpoint& client, clock::time_point now = clock::now()) const;

  // True when `proof` was issued by this jar to `client` (address and port)
  // no more than `lifetime` before `now`.
  bool valid(const protocol::udp::cookie& proof, const endpoint& client,
             clock::time_point now = clock::now()) const;

 private:
  // Whole seconds since the jar was made: the issue time a cookie carries.
  std::uint32_t second_of(clock::time_point t) const;
  protocol::udp::cookie make(std::uint32_t second, const endpoint& client) const;

  std::array<std::byte, 32> secret_{};
  clock::time_point epoch_;
};

}  // namespace switchboard::services::files
