// Timers and deadlines on the monotonic clock.
//
//   co_await sleep_for(100ms);
//   auto n = co_await with_timeout(5s, stream.read_some(buf));  // timed_out on expiry
//   auto r = co_await with_deadline(t, read_request(stream));    // a whole task
//
// A deadline on an operation costs one timer-heap entry while it waits and
// nothing when it completes at once (a timeout not even a clock read). A
// deadline on a task runs it in a child cancel_scope that the timer cancels
// with timed_out, so the operation in flight reports timed_out and the task
// handles it like any other I/O error.
#pragma once

#include <chrono>
#include <concepts>
#include <system_error>

#include "switchboard/cancel.hpp"
#include "switchboard/detail/operation.hpp"
#include "switchboard/task.hpp"

namespace switchboard {

using clock = detail::clock;

// A child scope that cancels itself with timed_out at its deadline.
class deadline_scope : public cancel_scope {
 public:
  deadline_scope(cancel_scope* parent, clock::time_point deadline);
  ~deadline_scope();

  // True once the deadline passed and cancelled the scope.
  bool expired() const noexcept { return cancel_errno() == ETIMEDOUT; }

 private:
  struct expiry : detail::timer_node {
    deadline_scope* scope;
  } timer_;
};

// Suspends until `deadline`; returns operation_canceled when the scope was
// cancelled first, an empty error_code otherwise.
inline event::wait_operation sleep_until(clock::time_point deadline) noexcept {
  event::wait_operation op;
  op.code = detail::op_code::wait;
  op.has_deadline = true;
  op.when = deadline;
  return op;
}

inline event::wait_operation sleep_for(clock::duration delay) noexcept {
  return sleep_until(clock::now() + delay);
}

// An operation that fails with timed_out unless it completes by `deadline`.
template <class Op>
  requires std::derived_from<Op, detail::operation>
Op with_deadline(clock::time_point deadline, Op op) noexcept {
  op.limit_by(deadline);
  return op;
}

// An operation that fails with timed_out once it has waited `timeout`; the
// clock starts when it has to wait, which is when it is awaited (or never,
// when it completes at once).
template <class Op>
  requires std::derived_from<Op, detail::operation>
Op with_timeout(clock::duration timeout, Op op) noexcept {
  op.limit_for(timeout);
  return op;
}

// Runs `inner` in a child scope that is cancelled with timed_out at `deadline`.
template <class T>
task<T> with_deadline(clock::time_point deadline, task<T> inner) {
  deadline_scope scope(co_await this_scope(), deadline);
  co_return co_await in_scope(scope, std::move(inner));
}

template <class T>
task<T> with_timeout(clock::duration timeout, task<T> inner) {
  return with_deadline(clock::now() + timeout, std::move(inner));
}

}  // namespace switchboard
