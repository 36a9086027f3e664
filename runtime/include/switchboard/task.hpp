// task<T>: the lazy coroutine type every service and runtime call returns.
//
// A task does nothing until it is awaited; awaiting starts it by symmetric
// transfer and its final_suspend hands control straight back to the awaiter,
// so chains of any depth use constant stack (in optimised builds: g++ 12 at
// -O0 does not turn the transfer into a tail call). A value or an exception
// comes back to the awaiter. Tasks are move-only and own their frame.
#pragma once

#include <coroutine>
#include <exception>
#include <type_traits>
#include <utility>
#include <variant>

namespace switchboard {

class cancel_scope;

namespace detail {

struct promise_base {
  struct final_awaiter {
    bool await_ready() const noexcept { return false; }
    template <class Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> self) noexcept {
      return self.promise().continuation;
    }
    void await_resume() const noexcept {}
  };

  std::suspend_always initial_suspend() const noexcept { return {}; }
  final_awaiter final_suspend() const noexcept { return {}; }

  std::coroutine_handle<> continuation = std::noop_coroutine();
  // The cancellation scope the task runs in, inherited from its awaiter.
  cancel_scope* scope = nullptr;
};

// The scope of the coroutine behind `h`, or none for coroutine types that are
// not the runtime's own.
template <class Promise>
cancel_scope* scope_of(std::coroutine_handle<Promise> h) noexcept {
  if constexpr (std::is_base_of_v<promise_base, Promise>) {
    return h.promise().scope;
  } else {
    return nullptr;
  }
}

template <class T>
struct task_promise : promise_base {
  std::variant<std::monostate, T, std::exception_ptr> outcome;

  template <class U>
  void return_value(U&& value) {
    outcome.template emplace<1>(std::forward<U>(value));
  }
  void unhandled_exception() noexcept { outcome.template emplace<2>(std::current_exception()); }

  T take() {
    if (outcome.index() == 2) std::rethrow_exception(std::get<2>(outcome));
    return std::move(std::get<1>(outcome));
  }
};

template <>
struct task_promise<void> : promise_base {
  std::exception_ptr exception;

  void return_void() const noexcept {}
  void unhandled_exception() noexcept { exception = std::current_exception(); }

  void take() const {
    if (exception) std::rethrow_exception(exception);
  }
};

}  // namespace detail

template <class T = void>
class [[nodiscard]] task {
 public:
  struct promise_type : detail::task_promise<T> {
    task get_return_object() noexcept {
      return task(std::coroutine_handle<promise_type>::from_promise(*this));
    }
  };
  using handle = std::coroutine_handle<promise_type>;

  task() noexcept = default;
  task(task&& other) noexcept : coro_(std::exchange(other.coro_, {})) {}
  task& operator=(task&& other) noexcept {
    if (this != &other) {
      destroy();
      coro_ = std::exchange(other.coro_, {});
    }
    return *this;
  }
  task(const task&) = delete;
  task& operator=(const task&) = delete;
  ~task() { destroy(); }

  // True when this task owns a coroutine.
  explicit operator bool() const noexcept { return static_cast<bool>(coro_); }

  struct awaiter {
    handle coro;
    bool await_ready() const noexcept { return !coro || coro.done(); }
    template <class Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> parent) noexcept {
      coro.promise().continuation = parent;
      if (!coro.promise().scope) coro.promise().scope = detail::scope_of(parent);
      return coro;
    }
    T await_resume() { return coro.promise().take(); }
  };

  // Awaiting starts the task in the awaiter's cancellation scope and yields
  // its value, or rethrows its exception.
  awaiter operator co_await() && noexcept { return awaiter{coro_}; }

  // The coroutine itself, for the runtime's own drivers.
  handle native() const noexcept { return coro_; }

 private:
  explicit task(handle h) noexcept : coro_(h) {}
  void destroy() noexcept {
    if (coro_) coro_.destroy();
    coro_ = {};
  }
  handle coro_;
};

}  // namespace switchboard
