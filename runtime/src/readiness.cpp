#include "readiness.hpp"

#include <cerrno>

namespace switchboard::detail {

void readiness_table::cancel(operation& op) {
  if (starved_receives::holds(op)) {
    starved_.complete(op, -ECANCELED);
    return;
  }
  at(op.fd).parked[static_cast<int>(op.wants())].remove(op);
  loop_.complete(op, -ECANCELED);
}

void readiness_table::retry_parked(entry& e, int dir) {
  waiter_list& parked = e.parked[dir];
  while (operation* op = parked.front()) {
    const int res = attempt_with_hint(e, *op, dir);
    if (res == -EAGAIN) return;
    parked.remove(*op);
    if (res == -ENOBUFS && op->runtime_buffer) {
      starved_.add(*op);  // data is there but no buffer: wait for one, the data stays
    } else {
      loop_.complete(*op, res);
    }
  }
}

void readiness_table::feed_starved(backend& owner) {
  while (!starved_.empty() && loop_.buffers.can_lend()) {
    operation& op = *starved_.pop();
    const int res = try_now(op);
    if (res == -EAGAIN) {
      owner.submit(op);
    } else {
      loop_.complete(op, res);
    }
  }
}

void readiness_table::forget(int fd) noexcept {
  starved_.forget(fd);
  if (static_cast<std::size_t>(fd) >= entries_.size()) return;
  entry& e = entries_[fd];
  for (waiter_list& parked : e.parked) {
    while (operation* op = parked.pop_front()) loop_.complete(*op, -EBADF);
  }
  e = entry{};
}

}  // namespace switchboard::detail
