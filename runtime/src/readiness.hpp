// What the readiness backends (select, epoll) share: per-fd FIFOs of parked
// operations, a hint per direction saying whether a syscall is worth it, and
// the receives starved of buffers.
//
// The hint saves the speculative syscall that would only answer EAGAIN: it is
// cleared when a syscall answered EAGAIN or a stream read came back short
// (the socket was drained at that instant) and set again when the backend
// reports the fd ready. That is safe under edge-triggered epoll because any
// data arriving after the clearing raises a new edge. A FIN, though, may sit
// behind the data a short read returned while its edge was already reported:
// once the backend has seen a hang-up on the fd, reads are always tried.
#pragma once

#include <vector>

#include "backend.hpp"
#include "starved.hpp"

namespace switchboard::detail {

class readiness_table {
 public:
  struct entry {
    waiter_list parked[2];  // indexed by direction
    bool may_be_ready[2] = {true, true};
    bool hung_up = false;       // the peer closed or reset: EOF or an error is pending
    bool registered = false;    // epoll: added to the interest list
    bool always_ready = false;  // epoll refused it (regular file, /dev/null): never waits
  };

  explicit readiness_table(loop_state& loop) : loop_(loop), starved_(loop) {}

  entry& at(int fd) {
    if (static_cast<std::size_t>(fd) >= entries_.size()) entries_.resize(fd + 1024);
    return entries_[fd];
  }
  bool has_waiters(int fd, direction dir) const {
    return static_cast<std::size_t>(fd) < entries_.size() &&
           !entries_[fd].parked[static_cast<int>(dir)].empty();
  }

  // Tries `op` at once without blocking (start() calls it, inlined, for
  // every operation): its result (>= 0 or -errno), or -EAGAIN when it has
  // to wait.
  int try_now(operation& op) {
    entry& e = at(op.fd);
    const int dir = static_cast<int>(op.wants());
    // Ops parked earlier on this fd go first; a hint of "not ready" saves the syscall.
    if (!e.parked[dir].empty() || !(e.may_be_ready[dir] || e.always_ready)) return -EAGAIN;
    const int res = attempt_with_hint(e, op, dir);
    // No buffer to lend: the receive waits for one (park() starves it).
    return res == -ENOBUFS && op.runtime_buffer ? -EAGAIN : res;
  }
  // Appends `op` to the FIFO of `e` (its fd's entry) for its direction;
  // false when it joined the starved receives instead (no buffer can be
  // lent now): then there is nothing to watch for it.
  bool park(entry& e, operation& op) {
    if (op.runtime_buffer && !loop_.buffers.can_lend()) {
      starved_.add(op);
      return false;
    }
    e.parked[static_cast<int>(op.wants())].push_back(op);
    return true;
  }
  // Takes `op` off its FIFO (or the starved list) and completes it with -ECANCELED.
  void cancel(operation& op);
  // `fd` is ready in `dir`: retries the parked ops in order, completing each
  // that finishes, until one would block. Most wake-ups find no op parked
  // in one of the directions: that costs a store.
  void ready(int fd, direction dir) {
    entry& e = at(fd);
    e.may_be_ready[static_cast<int>(dir)] = true;
    if (!e.parked[static_cast<int>(dir)].empty()) retry_parked(e, static_cast<int>(dir));
  }
  // The backend saw the peer hang up (EPOLLRDHUP, EPOLLHUP or EPOLLERR).
  void hung_up(int fd) { at(fd).hung_up = true; }
  // Completes whatever waits on `fd` with -EBADF and resets its state.
  void forget(int fd) noexcept;
  // Tries the starved receives again, oldest first, while buffers can be
  // lent: at once (their data is usually there), or through `owner`'s
  // submit() when they find none yet.
  void feed_starved(backend& owner);

 private:
  // attempt(), and the hint for `dir` cleared when it answered EAGAIN or a
  // stream read came back short. Inline: it runs once or twice per operation.
  int attempt_with_hint(entry& e, operation& op, int dir) {
    const int res = attempt(op, loop_.buffers);
    if (res == -EAGAIN) {
      e.may_be_ready[dir] = false;
    } else if (op.code == op_code::recv && !op.transfer_all && !e.hung_up && res > 0 &&
               static_cast<std::size_t>(res) < op.size) {
      e.may_be_ready[dir] = false;
    }
    return res;
  }
  void retry_parked(entry& e, int dir);
  loop_state& loop_;
  std::vector<entry> entries_;
  starved_receives starved_;
};

}  // namespace switchboard::detail
