#include "switchboard/log.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

namespace switchboard {

log_sink::~log_sink() {
  if (own_fd_ >= 0) ::close(own_fd_);
}

void log_sink::never_block() {
  if (mode_ != mode::blocking) return;
  struct stat info {};
  if (::fstat(fd_, &info) != 0) {
    mode_ = mode::poll_first;
  } else if (S_ISSOCK(info.st_mode)) {
    mode_ = mode::socket;  // send() takes MSG_DONTWAIT per call
  } else if (S_ISFIFO(info.st_mode) || S_ISCHR(info.st_mode)) {
    // Opening /proc/self/fd/N gives a pipe, FIFO or terminal a new open file
    // description, whose O_NONBLOCK is ours alone.
    const std::string path = "/proc/self/fd/" + std::to_string(fd_);
    own_fd_ = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    mode_ = own_fd_ >= 0 ? mode::own_description : mode::poll_first;
  }
  // A regular file takes a line at once: writing it waits for no reader.
}

void log_sink::limit_rate(double lines_per_second) {
  rate_ = lines_per_second;
  tokens_ = std::max(1.0, lines_per_second);
  refilled_ = clock::now();
}

bool log_sink::event(std::string_view line, clock::time_point now) {
  if (rate_ > 0) {
    const double burst = std::max(1.0, rate_);
    tokens_ = std::min(burst, tokens_ + std::chrono::duration<double>(now - refilled_).count() * rate_);
    refilled_ = now;
    if (tokens_ < 1) {
      ++dropped_;
      ++unreported_;
      return false;
    }
    tokens_ -= 1;
  }
  return write_line(line);
}

bool log_sink::notice(std::string_view line) { return write_line(line); }

bool log_sink::write_line(std::string_view line) {
  // One write for the line and the count of what was dropped before it: a
  // pipe takes up to PIPE_BUF bytes whole or not at all, so lines never
  // interleave with other writers' and the count never goes out alone.
  constexpr std::size_t note_room = 96;
  std::array<char, note_room + max_line_length + 1> whole;
  std::size_t size = 0;
  if (unreported_ > 0) {
    const auto note = fmt::format_to_n(whole.data(), note_room,
                                       "log: {} lines dropped (over --log-rate, or stderr was full)\n",
                                       unreported_);
    size = std::min(note.size, note_room);
  }
  const std::size_t kept = std::min(line.size(), max_line_length);
  std::copy_n(line.data(), kept, whole.data() + size);
  size += kept;
  whole[size++] = '\n';
  if (write_once({whole.data(), size})) {
    unreported_ = 0;
    return true;
  }
  ++dropped_;
  ++unreported_;
  return false;
}

bool log_sink::write_once(std::string_view bytes) {
  for (;;) {
    ssize_t n = -1;
    switch (mode_) {
      case mode::blocking:
        n = ::write(fd_, bytes.data(), bytes.size());
        break;
      case mode::own_description:
        n = ::write(own_fd_, bytes.data(), bytes.size());
        break;
      case mode::socket:
        n = ::send(fd_, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        break;
      case mode::poll_first: {
        // Without a description of our own: a pipe that polls writable has
        // room for a page, more than a line.
        pollfd ready{fd_, POLLOUT, 0};
        if (::poll(&ready, 1, 0) != 1 || !(ready.revents & POLLOUT)) return false;
        n = ::write(fd_, bytes.data(), bytes.size());
        break;
      }
    }
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
    // Only a blocking descriptor is worth asking again for the rest.
    if (bytes.empty() || mode_ != mode::blocking) return true;
  }
}

log_sink& diagnostics() {
  static log_sink sink(STDERR_FILENO);
  return sink;
}

}  // namespace switchboard
