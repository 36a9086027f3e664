#include "datagram_guard.hpp"

#include <algorithm>
#include <chrono>
#include <string_view>

namespace switchboard::services {
namespace {
constexpr std::uint16_t lowest_client_port = 1024;
}

datagram_guard::datagram_guard(settings limits)
    : limits_(limits), total_{limits.total_rate, clock::now()} {}

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

// A source whose bucket has refilled completely behaves as if it were new:
// dropping it loses nothing.
void datagram_guard::forget_idle(clock::time_point now) {
  const auto full_after = std::chrono::duration<double>(limits_.per_source_burst / limits_.per_source_rate);
  std::erase_if(buckets_, [&](const auto& entry) {
    return now - entry.second.refilled > full_after;
  });
}

bool datagram_guard::allow(const endpoint& source, clock::time_point now) {
  if (!source.is_unix() && source.port() < lowest_client_port) {
    ++dropped_;
    return false;
  }
  auto it = buckets_.find(source);
  if (it == buckets_.end()) {
    if (buckets_.size() >= limits_.max_sources) forget_idle(now);
    if (buckets_.size() >= limits_.max_sources) {
      ++dropped_;
      return false;
    }
    it = buckets_.emplace(source, bucket{limits_.per_source_burst, now}).first;
  }
  if (!take(it->second, limits_.per_source_rate, limits_.per_source_burst, now) ||
      !take(total_, limits_.total_rate, limits_.total_rate, now)) {
    ++dropped_;
    return false;
  }
  return true;
}

}  // namespace switchboard::services
