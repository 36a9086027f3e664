// select(2): readiness. Operations try their syscall first and park on EAGAIN
// until select reports their fd; the shared readiness_table does the rest.
//
// The descriptor sets are the project's own bit arrays, grown with the
// highest fd and handed to the kernel as fd_set*: the kernel accepts any nfds,
// but glibc's fortified FD_SET aborts on fd >= FD_SETSIZE (1024) even on a
// larger buffer, so FD_SET/FD_ISSET are never used here. The O(highest fd)
// scan per wait is select's real cost and is left visible to the benchmark.
#include <fcntl.h>
#include <sys/select.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <vector>

#include <fmt/core.h>

#include "readiness.hpp"
#include "trace.hpp"

namespace switchboard::detail {
namespace {

class fd_bits {
 public:
  using word = unsigned long;
  static constexpr int word_bits = sizeof(word) * CHAR_BIT;

  void set(int fd) {
    const std::size_t index = static_cast<std::size_t>(fd) / word_bits;
    if (index >= words_.size()) words_.resize(index + 1, 0);
    words_[index] |= word{1} << (fd % word_bits);
  }
  bool test(int fd) const noexcept {
    const std::size_t index = static_cast<std::size_t>(fd) / word_bits;
    return index < words_.size() && (words_[index] >> (fd % word_bits)) & 1;
  }
  void clear(int fd) noexcept {
    const std::size_t index = static_cast<std::size_t>(fd) / word_bits;
    if (index < words_.size()) words_[index] &= ~(word{1} << (fd % word_bits));
  }
  // Copies the first `count` words of `other` (zero-padding as needed).
  void copy_prefix(const fd_bits& other, std::size_t count) {
    words_.assign(count, 0);
    std::copy_n(other.words_.begin(), std::min(count, other.words_.size()), words_.begin());
  }
  template <class Visit>
  void for_each(Visit visit) const {
    for (std::size_t i = 0; i < words_.size(); ++i) {
      for (word w = words_[i]; w; w &= w - 1) visit(static_cast<int>(i * word_bits) + __builtin_ctzl(w));
    }
  }
  fd_set* as_fd_set() noexcept { return reinterpret_cast<fd_set*>(words_.data()); }

 private:
  std::vector<word> words_;
};

class select_backend final : public backend {
 public:
  explicit select_backend(loop_state& loop) : backend(&table_), loop_(loop), table_(loop) {}

  backend_kind kind() const noexcept override { return backend_kind::select; }

  void submit(operation& op) override {
    if (!table_.park(table_.at(op.fd), op)) return;
    watch_[static_cast<int>(op.wants())].set(op.fd);
    highest_fd_ = std::max(highest_fd_, op.fd);
  }

  void cancel(operation& op) override {
    table_.cancel(op);
    unwatch_if_idle(op.fd, op.wants());
  }

  void wait(std::optional<std::chrono::nanoseconds> timeout) override {
    table_.feed_starved(*this);
    const std::size_t words = static_cast<std::size_t>(highest_fd_ + fd_bits::word_bits) /
                              fd_bits::word_bits;
    ready_[0].copy_prefix(watch_[0], words);
    ready_[1].copy_prefix(watch_[1], words);
    timeval tv{};
    if (timeout) {
      const auto us = (timeout->count() + 999) / 1000;
      tv.tv_sec = us / 1'000'000;
      tv.tv_usec = us % 1'000'000;
    }
    const int n = ::select(highest_fd_ + 1, ready_[0].as_fd_set(), ready_[1].as_fd_set(), nullptr,
                           timeout ? &tv : nullptr);
    if (n < 0 && errno == EBADF) fail_closed_fds();
    // One check per wait, not per ready fd, while tracing is off.
    if (loop_.trace) {
      handle_traced(std::max(n, 0));
      return;
    }
    if (n <= 0) return;  // timeout, or EINTR: the loop simply turns again
    for (int d = 0; d < 2; ++d) {
      ready_[d].for_each([&](int fd) { handle(fd, static_cast<direction>(d)); });
    }
  }

  void forget(int fd) noexcept override {
    table_.forget(fd);
    watch_[0].clear(fd);
    watch_[1].clear(fd);
    lower_highest_fd();
  }

  std::string describe() const override {
    return fmt::format("select, highest fd {}", highest_fd_);
  }

 private:
  void unwatch_if_idle(int fd, direction dir) {
    if (table_.has_waiters(fd, dir)) return;
    watch_[static_cast<int>(dir)].clear(fd);
    if (fd == highest_fd_) lower_highest_fd();
  }

  // select() fails as a whole with EBADF, turn after turn, while a watched
  // number has been closed behind the runtime's back (unsupported, but it
  // must not spin): fail what waits on the numbers that name no file now.
  void fail_closed_fds() {
    for (const fd_bits& watched : watch_) {
      watched.for_each([&](int fd) {
        if (::fcntl(fd, F_GETFD) < 0 && errno == EBADF) forget(fd);
      });
    }
  }

  // Keeps select's nfds, and so its scan, as small as the watched fds allow.
  void lower_highest_fd() noexcept {
    while (highest_fd_ >= 0 && !watch_[0].test(highest_fd_) && !watch_[1].test(highest_fd_)) {
      --highest_fd_;
    }
  }

  void handle(int fd, direction dir) {
    table_.ready(fd, dir);
    unwatch_if_idle(fd, dir);
  }

  // handle() for each of the n ready fds, each named to the tracer first
  // (while it traces: the limit may stop it in the middle of the batch).
  void handle_traced(int ready) {
    loop_.trace->wait_returned(ready);
    if (ready == 0) return;
    int watched = 0;
    for (const fd_bits& bits : watch_) bits.for_each([&](int) { ++watched; });
    for (int d = 0; d < 2; ++d) {
      const auto dir = static_cast<direction>(d);
      ready_[d].for_each([&](int fd) {
        if (loop_.trace) {
          loop_.trace->set_cause("select() → fd {} {} ({} of {} fds ready)", fd,
                                 dir == direction::read ? "readable" : "writable", ready, watched);
        }
        handle(fd, dir);
      });
    }
  }

  loop_state& loop_;
  readiness_table table_;
  fd_bits watch_[2];  // fds with parked operations, per direction
  fd_bits ready_[2];  // select's in/out copies
  int highest_fd_ = -1;
};

}  // namespace

std::unique_ptr<backend> make_select_backend(loop_state& loop) {
  return std::make_unique<select_backend>(loop);
}

}  // namespace switchboard::detail
