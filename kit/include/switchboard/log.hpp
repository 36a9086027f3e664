// Diagnostics on stderr, one line per event; data goes to stdout.
//
// A server must never wait for its log: with stderr a pipe whose reader
// stalls, one blocked write would stop the whole loop, and a flood of bad
// requests must not turn into an unbounded log. So once a server serves
// (log_sink::never_block), every line goes out in one write that cannot
// block, or is dropped and counted; events beyond --log-rate per second are
// dropped too; and a line is cut at log_sink::max_line_length, whatever a
// peer put into it. The next line that goes out says how many were dropped.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string_view>

#include <fmt/core.h>
#include <switchboard/fmt.hpp>

namespace switchboard {

class log_sink {
 public:
  using clock = std::chrono::steady_clock;
  // Longer lines are cut, ending in "...".
  static constexpr std::size_t max_line_length = 512;

  // Writes to `fd`, which stays the caller's, waiting for it when it is full
  // until never_block() is called.
  explicit log_sink(int fd) : fd_(fd) {}
  ~log_sink();
  log_sink(const log_sink&) = delete;
  log_sink& operator=(const log_sink&) = delete;

  // From now on a line that the descriptor cannot take at once is dropped.
  // O_NONBLOCK is never set on the descriptor itself: its open file
  // description is shared with the parent (a shell, a supervisor), which
  // would then see EAGAIN on its own writes.
  void never_block();
  // At most `lines_per_second` events per second, in bursts of as many; 0: no limit.
  void limit_rate(double lines_per_second);

  // Writes `line` (a LF is added), unless it is over the rate or cannot go out now.
  bool event(std::string_view line, clock::time_point now = clock::now());
  // Writes `line` whatever the rate: what an operator asked for or waits for
  // (listening, statistics, stopping).
  bool notice(std::string_view line);

  // Lines dropped so far.
  std::uint64_t dropped() const noexcept { return dropped_; }

 private:
  enum class mode { blocking, own_description, socket, poll_first };
  bool write_line(std::string_view line);
  bool write_once(std::string_view bytes);

  int fd_;
  int own_fd_ = -1;  // a non-blocking description of the same pipe or terminal
  mode mode_ = mode::blocking;
  double rate_ = 0;
  double tokens_ = 0;
  clock::time_point refilled_{};
  std::uint64_t dropped_ = 0;
  std::uint64_t unreported_ = 0;  // dropped since the last line that went out
};

// The process's diagnostics: standard error.
log_sink& diagnostics();

// `format` with `args`, cut to one log line in `line`.
template <class... Args>
std::string_view format_log_line(std::array<char, log_sink::max_line_length>& line,
                             fmt::format_string<Args...> format, Args&&... args) {
  const auto written = fmt::format_to_n(line.data(), line.size(), format, std::forward<Args>(args)...);
  if (written.size <= line.size()) return {line.data(), written.size};
  line[line.size() - 3] = line[line.size() - 2] = line[line.size() - 1] = '.';
  return {line.data(), line.size()};
}

// An event: dropped when over --log-rate or when stderr cannot take it now.
template <class... Args>
void log(fmt::format_string<Args...> format, Args&&... args) {
  std::array<char, log_sink::max_line_length> line;
  diagnostics().event(format_log_line(line, format, std::forward<Args>(args)...));
}

// A line outside the rate limit: "listening on", statistics, stopping.
template <class... Args>
void notice(fmt::format_string<Args...> format, Args&&... args) {
  std::array<char, log_sink::max_line_length> line;
  diagnostics().notice(format_log_line(line, format, std::forward<Args>(args)...));
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

}  // namespace switchboard
