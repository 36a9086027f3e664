// Cancellation, events and task groups.
//
// Every task runs in a cancel_scope, inherited from whoever awaits it. Cancelling
// a scope cancels the operation in flight in it and in all its child scopes;
// operations started later in it fail at once. A cancelled operation still
// resumes its coroutine exactly once, after the kernel's own answer, with
// std::errc::operation_canceled (or timed_out when a deadline did it) unless
// it finished first: data that arrived is never dropped.
#pragma once

#include <cstddef>
#include <string>
#include <system_error>

#include "switchboard/detail/operation.hpp"
#include "switchboard/result.hpp"
#include "switchboard/task.hpp"

namespace switchboard {

class cancel_scope {
 public:
  // A root scope, or a child of `parent` that is cancelled along with it.
  explicit cancel_scope(cancel_scope* parent = nullptr) noexcept;
  ~cancel_scope();
  cancel_scope(const cancel_scope&) = delete;
  cancel_scope& operator=(const cancel_scope&) = delete;

  // Cancels what runs in this scope and its children; `why` is what the
  // interrupted operations report (operation_canceled or timed_out).
  void cancel(std::errc why = std::errc::operation_canceled) noexcept;

  bool cancelled() const noexcept { return cancel_errno_ != 0; }
  // ECANCELED or ETIMEDOUT once cancelled, else 0.
  int cancel_errno() const noexcept { return cancel_errno_; }

  // Bookkeeping for the loop: operations in flight in this scope (inline:
  // every operation that waits passes through both).
  void attach(detail::operation& op) noexcept {
    op.scope = this;
    op.scope_prev = nullptr;
    op.scope_next = first_op_;
    if (first_op_) first_op_->scope_prev = &op;
    first_op_ = &op;
  }
  void detach(detail::operation& op) noexcept {
    (op.scope_prev ? op.scope_prev->scope_next : first_op_) = op.scope_next;
    if (op.scope_next) op.scope_next->scope_prev = op.scope_prev;
    op.scope = nullptr;
  }

 private:
  cancel_scope* parent_ = nullptr;
  cancel_scope* first_child_ = nullptr;
  cancel_scope* prev_sibling_ = nullptr;
  cancel_scope* next_sibling_ = nullptr;
  detail::operation* first_op_ = nullptr;
  int cancel_errno_ = 0;
};

namespace detail {
struct this_scope_awaiter {
  cancel_scope* scope = nullptr;
  bool await_ready() const noexcept { return false; }
  template <class Promise>
  bool await_suspend(std::coroutine_handle<Promise> h) noexcept {
    scope = scope_of(h);
    return false;
  }
  cancel_scope* await_resume() const noexcept { return scope; }
};
}  // namespace detail

// The scope of the awaiting task: `cancel_scope* s = co_await this_scope();`.
inline detail::this_scope_awaiter this_scope() noexcept { return {}; }

// Makes `t` run in `scope` rather than in its awaiter's: `co_await in_scope(s, work())`.
template <class T>
task<T>&& in_scope(cancel_scope& scope, task<T>&& t) noexcept {
  t.native().promise().scope = &scope;
  return std::move(t);
}

// A flag coroutines can wait for; set() wakes every waiter.
class event {
 public:
  event() = default;
  ~event();
  event(const event&) = delete;
  event& operator=(const event&) = delete;

  void set() noexcept;
  void reset() noexcept { set_ = false; }
  bool is_set() const noexcept { return set_; }

  struct wait_operation : detail::awaitable_operation<wait_operation> {
    // A shielded wait ignores its task's cancellation; only its own deadline ends it early.
    bool shielded = false;

    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
      return detail::start(*this, h, shielded ? nullptr : detail::scope_of(h));
    }
    // Empty when the event was set; operation_canceled or timed_out otherwise.
    std::error_code await_resume() const noexcept {
      return res < 0 ? errno_code(-res) : std::error_code{};
    }
  };
  // Waits until the event is set (at once when it already is).
  wait_operation wait() noexcept;

  // Loop bookkeeping: a waiting operation leaves early (cancelled).
  void remove(detail::operation& op) noexcept;
  void add(detail::operation& op) noexcept;

 private:
  bool set_ = false;
  detail::waiter_list waiters_;
};

// A set of detached tasks that can be cancelled and awaited together: the
// runtime's own spawn() uses one, and a server keeps its connections in one
// so that it can stop accepting, wait for them with a deadline, then cancel
// what is left. An exception escaping a member task is reported with the
// task's name and does not disturb the others.
class task_group {
 public:
  // Member tasks are cancelled along with `parent` (a task's own scope,
  // from `co_await this_scope()`), or only through cancel() without one.
  explicit task_group(cancel_scope* parent = nullptr) noexcept;
  // The group must be empty: join it first (a frame in flight is never destroyed).
  ~task_group();
  task_group(const task_group&) = delete;
  task_group& operator=(const task_group&) = delete;

  // Starts `t` at the loop's next turn in a scope of its own under this
  // group. `name` labels the task's escaping exception; it is kept with the
  // task, so a name longer than std::string's small-string buffer (15 bytes
  // in libstdc++) costs an allocation: format it only when it is worth that.
  void spawn(task<void> t, std::string name = {});

  std::size_t size() const noexcept { return live_; }
  std::size_t total() const noexcept { return total_; }

  // Cancels every member task (and those spawned later, until reset_cancel()).
  void cancel(std::errc why = std::errc::operation_canceled) noexcept { scope_.cancel(why); }

  struct join_operation : event::wait_operation {
    // True once the group is empty; false when a deadline on the join
    // (with_timeout) came first:
    //   const bool joined = co_await with_timeout(5s, group.join());
    // (not `if (!co_await ...)`: g++ 12 miscompiles a unary operator on a co_await).
    bool await_resume() const noexcept { return res == 0; }
  };
  // Waits until the group is empty, even when the waiting task is cancelled
  // (its members are cancelled with it when the group has it as parent):
  // a group must not end while a member still runs. Only a deadline on the
  // join itself (with_timeout) ends the wait early.
  join_operation join() noexcept {
    join_operation op{empty_.wait()};
    op.shielded = true;
    return op;
  }

  // The runtime's hook for tasks that end with an exception.
  void report(const std::string& name, std::exception_ptr error) const noexcept;

  // Bookkeeping for member tasks.
  cancel_scope& scope() noexcept { return scope_; }
  void finished() noexcept;

 private:
  cancel_scope scope_;
  event empty_;
  std::size_t live_ = 0;
  std::size_t total_ = 0;
};

}  // namespace switchboard
