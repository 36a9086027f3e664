#include "switchboard/datagram_guard.hpp"

#include <algorithm>
#include <chrono>
#include <string_view>

namespace switchboard {
namespace {
constexpr std::uint16_t lowest_client_port = 1024;
constexpr double least_burst = 50;
}  // namespace

datagram_guard::datagram_guard(settings limits)
    : limits_(limits), total_{limits.total_rate, clock::now()} {
  // A higher rate for a source (all the users behind a NAT address) comes
  // with bursts to match: they send at once, not evenly spaced.
  if (limits_.per_source_burst <= 0) limits_.per_source_burst = std::max(least_burst, limits_.per_source_rate / 4);
  index_.reserve(limits.max_sources);
}

std::size_t endpoint_hash::operator()(const endpoint& ep) const noexcept {
  return std::hash<std::string_view>{}(
      std::string_view(reinterpret_cast<const char*>(ep.native()), ep.native_size()));
}

bool datagram_guard::take(bucket& b, double rate, double burst, clock::time_point now) const {
  const double elapsed = std::chrono::duration<double>(now - b.refilled).count();
  b.tokens = std::min(burst, b.tokens + elapsed * rate);
  b.refilled = now;
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

// The least recently heard source gives up its entry: a flooder that wants
// a victim's bucket refilled this way must first send from `max_sources`
// other sources, each of which spends a token of the global bucket.
datagram_guard::bucket& datagram_guard::bucket_of(const source_key& source, clock::time_point now) {
  if (auto found = index_.find(source); found != index_.end()) {
    by_age_.splice(by_age_.end(), by_age_, found->second);
    return found->second->replies;
  }
  if (index_.size() >= limits_.max_sources && !by_age_.empty()) {
    ++examined_;
    index_.erase(by_age_.front().source);
    by_age_.splice(by_age_.end(), by_age_, by_age_.begin());
    by_age_.back() = {source, {limits_.per_source_burst, now}};
  } else {
    by_age_.push_back({source, {limits_.per_source_burst, now}});
  }
  index_.emplace(source, std::prev(by_age_.end()));
  return by_age_.back().replies;
}

bool datagram_guard::allow(const endpoint& source, clock::time_point now) {
  if (!source.is_unix() && source.port() < lowest_client_port) {
    ++dropped_;
    return false;
  }
  bucket& replies = bucket_of(source_key::of(source), now);
  if (!take(replies, limits_.per_source_rate, limits_.per_source_burst, now) ||
      !take(total_, limits_.total_rate, limits_.total_rate, now)) {
    ++dropped_;
    return false;
  }
  return true;
}

}  // namespace switchboard
