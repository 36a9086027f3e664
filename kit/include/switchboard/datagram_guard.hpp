// Who a datagram server may answer, and how often. UDP does not check source
// addresses, so every reply can be aimed at a victim by spoofing:
//  - sources with a port below 1024 are dropped: two UDP services answering
//    each other loop forever (CVE-2024-2169, "Loop DoS"), and clients use
//    ephemeral ports;
//  - each source (an IPv4 address or an IPv6 /64, whatever its port: see
//    source_key.hpp) gets a token bucket of replies per second, and all
//    sources together a global one, so a flood cannot be reflected at full
//    rate, nor at one victim from many ports;
//  - the table of sources is bounded: a new source beyond `max_sources`
//    takes the place of the one heard from least recently, in constant time,
//    so memory stays flat and a flood of new sources neither locks real
//    clients out nor costs a scan of the table per datagram.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <unordered_map>

#include <switchboard/net.hpp>
#include <switchboard/time.hpp>

#include "switchboard/source_key.hpp"

namespace switchboard {

// Hashes an endpoint (address and port) for the tables datagram servers keep per source.
struct endpoint_hash {
  std::size_t operator()(const endpoint& ep) const noexcept;
};

class datagram_guard {
 public:
  struct settings {
    double per_source_rate = 200;  // replies per second to one source
    // 0: a quarter of a second's replies, at least 50 (50 at the default rate)
    double per_source_burst = 0;
    double total_rate = 50'000;    // replies per second to everyone
    std::size_t max_sources = 16'384;
  };

  explicit datagram_guard(settings limits);

  // True when a reply to `source` may go out now; false counts a drop.
  bool allow(const endpoint& source, clock::time_point now = clock::now());

  std::uint64_t dropped() const noexcept { return dropped_; }
  std::size_t sources() const noexcept { return index_.size(); }
  // Entries of the table looked at to make room for new sources: one per
  // source forgotten, never a scan.
  std::uint64_t examined() const noexcept { return examined_; }

 private:
  struct bucket {
    double tokens;
    clock::time_point refilled;
  };
  struct entry {
    source_key source;
    bucket replies;
  };
  using entry_list = std::list<entry>;

  bool take(bucket& b, double rate, double burst, clock::time_point now) const;
  // The bucket of `source`, made or recycled when it is new; heard from last.
  bucket& bucket_of(const source_key& source, clock::time_point now);

  settings limits_;
  bucket total_;
  entry_list by_age_;  // heard from least recently first
  std::unordered_map<source_key, entry_list::iterator, source_key_hash> index_;
  std::uint64_t dropped_ = 0;
  std::uint64_t examined_ = 0;
};

}  // namespace switchboard
