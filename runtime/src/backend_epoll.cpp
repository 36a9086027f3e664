// epoll(7): readiness, same contract as select over an O(ready) wait.
//
// Each fd is added once, edge-triggered for both directions, the first time an
// operation parks on it, and removed only when it is closed: no epoll_ctl per
// operation. Edge-triggered is safe because readiness_table retries parked
// operations until EAGAIN and only skips a syscall after seeing EAGAIN (or a
// short read) since the last edge. epoll refuses regular files and /dev/null
// with EPERM; such fds are always ready, so their operations run at once.
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>
#include <vector>

#include <fmt/core.h>

#include "readiness.hpp"
#include "trace.hpp"

namespace switchboard::detail {
namespace {

constexpr std::uint32_t watched_events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;

class epoll_backend final : public backend {
 public:
  explicit epoll_backend(loop_state& loop) : backend(&table_), loop_(loop), table_(loop), events_(256) {
    epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) {
      const std::error_code error(errno, std::generic_category());
      throw backend_unavailable(backend_kind::epoll, error, "epoll_create1 failed");
    }
  }
  ~epoll_backend() override { ::close(epfd_); }

  backend_kind kind() const noexcept override { return backend_kind::epoll; }

  void submit(operation& op) override {
    readiness_table::entry& e = table_.at(op.fd);
    if (!e.registered && !e.always_ready) {
      epoll_event ev{};
      ev.events = watched_events;
      ev.data.fd = op.fd;
      if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, op.fd, &ev) == 0) {
        e.registered = true;
      } else if (errno == EPERM) {
        e.always_ready = true;
      } else {
        loop_.complete(op, -errno);
        return;
      }
    }
    if (e.always_ready) {
      const int res = attempt(op, loop_.buffers);
      if (res != -ENOBUFS || !op.runtime_buffer) {
        loop_.complete(op, res);
        return;
      }
    }
    table_.park(e, op);
  }

  void cancel(operation& op) override { table_.cancel(op); }

  void wait(std::optional<std::chrono::nanoseconds> timeout) override {
    table_.feed_starved(*this);
    int timeout_ms = -1;
    if (timeout) {
      // Round up: rounding down would wake early and spin until the deadline.
      timeout_ms = static_cast<int>(std::min<std::int64_t>((timeout->count() + 999'999) / 1'000'000,
                                                           INT32_MAX));
    }
    const int n = ::epoll_wait(epfd_, events_.data(), static_cast<int>(events_.size()), timeout_ms);
    // One check per wait, not per event, while tracing is off.
    if (loop_.trace) {
      handle_traced(std::max(n, 0));
    } else {
      for (int i = 0; i < n; ++i) handle(events_[i].events, events_[i].data.fd);
    }
    if (n <= 0) return;  // timeout, or EINTR: the loop simply turns again
    if (static_cast<std::size_t>(n) == events_.size() && events_.size() < 4096) {
      events_.resize(events_.size() * 2);
    }
  }

  void forget(int fd) noexcept override {
    // close() alone leaves the registration behind while a dup of the fd lives on.
    if (table_.at(fd).registered) ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
    table_.forget(fd);
  }

  std::string describe() const override { return "epoll, edge-triggered"; }

 private:
  void handle(std::uint32_t ev, int fd) {
    if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) table_.hung_up(fd);
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) table_.ready(fd, direction::read);
    if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) table_.ready(fd, direction::write);
  }

  // handle() for each of the n events, each named to the tracer first (while
  // it traces: the limit may stop it in the middle of the batch).
  void handle_traced(int n) {
    loop_.trace->wait_returned(n);
    for (int i = 0; i < n; ++i) {
      const std::uint32_t ev = events_[i].events;
      const int fd = events_[i].data.fd;
      if (loop_.trace) {
        std::string names;
        for (const auto& [bit, name] : {std::pair{EPOLLIN, "EPOLLIN"}, std::pair{EPOLLOUT, "EPOLLOUT"},
                                         std::pair{EPOLLRDHUP, "EPOLLRDHUP"}, std::pair{EPOLLHUP, "EPOLLHUP"},
                                         std::pair{EPOLLERR, "EPOLLERR"}}) {
          if (!(ev & static_cast<std::uint32_t>(bit))) continue;
          if (!names.empty()) names += '|';
          names += name;
        }
        loop_.trace->set_cause("epoll_wait → {} fd {}", names, fd);
      }
      handle(ev, fd);
    }
  }

  loop_state& loop_;
  readiness_table table_;
  std::vector<epoll_event> events_;
  int epfd_ = -1;
};

}  // namespace

std::unique_ptr<backend> make_epoll_backend(loop_state& loop) {
  return std::make_unique<epoll_backend>(loop);
}

}  // namespace switchboard::detail
