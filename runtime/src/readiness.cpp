#include "readiness.hpp"

#include <cerrno>

namespace switchboard::detail {

int readiness_table::attempt_with_hint(entry& e, operation& op) {
  const int dir = static_cast<int>(op.wants());
  const int res = attempt(op);
  if (res == -EAGAIN) {
    e.may_be_ready[dir] = false;
  } else if (op.code == op_code::recv && !op.transfer_all && !e.hung_up && res > 0 &&
             static_cast<std::size_t>(res) < op.size) {
    e.may_be_ready[dir] = false;
  }
  return res;
}

int readiness_table::try_now(operation& op) {
  entry& e = at(op.fd);
  const int dir = static_cast<int>(op.wants());
  // Ops parked earlier on this fd go first; a hint of "not ready" saves the syscall.
  if (e.head[dir] || !(e.may_be_ready[dir] || e.always_ready)) return -EAGAIN;
  return attempt_with_hint(e, op);
}

void readiness_table::park(operation& op) {
  entry& e = at(op.fd);
  const int dir = static_cast<int>(op.wants());
  op.next_waiter = nullptr;
  if (e.tail[dir]) {
    e.tail[dir]->next_waiter = &op;
  } else {
    e.head[dir] = &op;
  }
  e.tail[dir] = &op;
}

void readiness_table::cancel(operation& op) {
  entry& e = at(op.fd);
  const int dir = static_cast<int>(op.wants());
  operation* prev = nullptr;
  for (operation* it = e.head[dir]; it; prev = it, it = it->next_waiter) {
    if (it != &op) continue;
    (prev ? prev->next_waiter : e.head[dir]) = it->next_waiter;
    if (e.tail[dir] == it) e.tail[dir] = prev;
    it->next_waiter = nullptr;
    loop_.complete(op, -ECANCELED);
    return;
  }
}

void readiness_table::ready(int fd, direction dir) {
  entry& e = at(fd);
  const int d = static_cast<int>(dir);
  e.may_be_ready[d] = true;
  while (operation* op = e.head[d]) {
    const int res = attempt_with_hint(e, *op);
    if (res == -EAGAIN) return;
    e.head[d] = op->next_waiter;
    if (!e.head[d]) e.tail[d] = nullptr;
    op->next_waiter = nullptr;
    loop_.complete(*op, res);
  }
}

void readiness_table::forget(int fd) noexcept {
  if (static_cast<std::size_t>(fd) >= entries_.size()) return;
  entry& e = entries_[fd];
  for (int d = 0; d < 2; ++d) {
    while (operation* op = e.head[d]) {
      e.head[d] = op->next_waiter;
      op->next_waiter = nullptr;
      loop_.complete(*op, -EBADF);
    }
  }
  e = entry{};
}

}  // namespace switchboard::detail
