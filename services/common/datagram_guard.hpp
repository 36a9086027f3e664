// Who a datagram server may answer, and how often. UDP does not check source
// addresses, so every reply can be aimed at a victim by spoofing:
//  - sources with a port below 1024 are dropped: two UDP services answering
//    each other loop forever (CVE-2024-2169, "Loop DoS"), and clients use
//    ephemeral ports;
//  - each source gets a token bucket of replies per second, and all sources
//    together a global one, so a flood cannot be reflected at full rate;
//  - the table of sources is bounded: beyond `max_sources` live entries a
//    new source is refused rather than remembered, so memory stays flat.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>

#include <switchboard/net.hpp>
#include <switchboard/time.hpp>

namespace switchboard::services {

// Hashes an endpoint (address and port) for the tables datagram servers keep per source.
struct endpoint_hash {
  std::size_t operator()(const endpoint& ep) const noexcept;
};

class datagram_guard {
 public:
  struct settings {
    double per_source_rate = 200;  // replies per second to one source
    double per_source_burst = 50;
    double total_rate = 50'000;    // replies per second to everyone
    std::size_t max_sources = 16'384;
  };

  explicit datagram_guard(settings limits);

  // True when a reply to `source` may go out now; false counts a drop.
  bool allow(const endpoint& source, clock::time_point now = clock::now());

  std::uint64_t dropped() const noexcept { return dropped_; }
  std::size_t sources() const noexcept { return buckets_.size(); }

 private:
  struct bucket {
    double tokens;
    clock::time_point refilled;
  };
  bool take(bucket& b, double rate, double burst, clock::time_point now) const;
  void forget_idle(clock::time_point now);

  settings limits_;
  bucket total_;
  std::unordered_map<endpoint, bucket, endpoint_hash> buckets_;
  std::uint64_t dropped_ = 0;
};

}  // namespace switchboard::services
