// Diagnostics on stderr, one line per event; data goes to stdout.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

#include <fmt/core.h>
#include <switchboard/fmt.hpp>

namespace switchboard::services {

template <class... Args>
void log(fmt::format_string<Args...> format, Args&&... args) {
  fmt::print(stderr, format, std::forward<Args>(args)...);
  std::fputc('\n', stderr);
}

// Logs the first event of an episode and then at most once a second with a
// count, so that a storm (EMFILE, a UDP flood) cannot flood the log.
class log_limiter {
 public:
  // True when this event should be logged; `suppressed` is how many were skipped since.
  bool allow(std::uint64_t& suppressed) {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::seconds(1)) {
      ++skipped_;
      return false;
    }
    last_ = now;
    suppressed = skipped_;
    skipped_ = 0;
    return true;
  }

 private:
  std::chrono::steady_clock::time_point last_{};
  std::uint64_t skipped_ = 0;
};

}  // namespace switchboard::services
