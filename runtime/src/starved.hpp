// Receives into lent buffers (stream::receive()) that found none to lend: on
// select and epoll the pool was at its limit when the socket had data; on
// io_uring the kernel's buffer ring was empty (-ENOBUFS). Such a receive is
// in no kernel request and on no fd's list, only here (backend_stage ==
// starved_stage), until buffers come back. cancel() and forget() complete it
// directly with the errno asked for; once completed it is never submitted
// again, so it can never read from a connection that reuses its fd's number.
#pragma once

#include <cerrno>
#include <cstdint>
#include <vector>

#include "backend.hpp"

namespace switchboard::detail {

class starved_receives {
 public:
  explicit starved_receives(loop_state& loop) : loop_(loop) {}

  bool empty() const noexcept { return list_.empty(); }
  static bool holds(const operation& op) noexcept { return op.backend_stage == starved_stage; }

  void add(operation& op) {
    if (static_cast<std::size_t>(op.fd) >= per_fd_.size()) per_fd_.resize(op.fd + 1024, 0);
    ++per_fd_[op.fd];
    op.backend_stage = starved_stage;
    list_.push_back(op);
  }
  // The oldest, taken off the list to be tried again; null when none waits.
  operation* pop() noexcept {
    operation* op = list_.front();
    if (op) leave(*op);
    return op;
  }
  // Completes `op`, one of these, with `res` (-ECANCELED or -EBADF).
  void complete(operation& op, int res) noexcept {
    leave(op);
    loop_.complete(op, res);
  }
  // `fd` is being closed: completes the receives starved on it with -EBADF.
  void forget(int fd) noexcept {
    if (static_cast<std::size_t>(fd) >= per_fd_.size() || per_fd_[fd] == 0) return;
    for (operation* op = list_.front(); op && per_fd_[fd] > 0;) {
      operation* next = op->next_waiter;
      if (op->fd == fd) complete(*op, -EBADF);
      op = next;
    }
  }

 private:
  void leave(operation& op) noexcept {
    list_.remove(op);
    --per_fd_[op.fd];
    op.backend_stage = 0;
  }
  loop_state& loop_;
  waiter_list list_;
  std::vector<std::uint32_t> per_fd_;  // how many wait on each fd: forget() looks only where one does
};

}  // namespace switchboard::detail
