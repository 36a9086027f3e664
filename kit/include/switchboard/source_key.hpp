// Who a limit per source counts a peer as: its IPv4 address, or the /64
// prefix of its IPv6 address. An IPv6 subscriber is handed at least a /64
// and may use any of its 2^64 addresses, so a limit per IPv6 address would
// limit nothing. An IPv4-mapped IPv6 address (::ffff:192.0.2.1, what a dual
// stack socket reports) is its IPv4 address. All Unix-domain peers are one
// local source.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>

#include <switchboard/net.hpp>

namespace switchboard {

class source_key {
 public:
  // The source `peer` belongs to.
  static source_key of(const endpoint& peer) noexcept;

  bool is_local() const noexcept { return kind_ == kind::local; }
  // "192.0.2.1", "2001:db8:0:1::/64" or "local".
  std::string to_string() const;

  friend bool operator==(const source_key&, const source_key&) noexcept = default;
  friend struct source_key_hash;

 private:
  enum class kind : std::uint8_t { local, ipv4, ipv6_prefix };
  kind kind_ = kind::local;
  std::uint64_t bits_ = 0;  // the IPv4 address, or the top 64 bits of the IPv6 one
};

struct source_key_hash {
  std::size_t operator()(const source_key& key) const noexcept;
};

// How many of something (connections, games) each source holds, against a
// cap per source; a source that holds none takes no room. The local source
// (Unix-domain peers, whom file permissions admit) is counted, never capped.
class source_counts {
 public:
  // At most `cap` per source; 0: no cap.
  explicit source_counts(std::size_t cap) : cap_(cap) {}

  // Counts one more for `key`; false, counting nothing, when it holds `cap` already.
  bool try_add(const source_key& key);
  // Counts one less for `key`, which holds at least one.
  void remove(const source_key& key);

  std::size_t held_by(const source_key& key) const;
  // Sources that hold at least one.
  std::size_t sources() const noexcept { return held_.size(); }

 private:
  std::size_t cap_;
  std::unordered_map<source_key, std::size_t, source_key_hash> held_;
};

}  // namespace switchboard
