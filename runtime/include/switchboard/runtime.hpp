// The runtime: one thread, one loop, one backend.
//
//   switchboard::runtime rt(switchboard::backend_kind::epoll);
//   rt.run(serve(options));          // until the main task ends
//
// Each turn of the loop fires expired timers, resumes the coroutines that
// became ready (in FIFO order), then lets the backend wait for I/O no longer
// than the nearest deadline. spawn() starts detached tasks owned by the
// runtime; when the main task ends they are cancelled and drained.
#pragma once

#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "switchboard/cancel.hpp"
#include "switchboard/detail/loop.hpp"
#include "switchboard/task.hpp"

namespace switchboard {

enum class backend_kind : unsigned char { select, epoll, uring };

// "select", "epoll" or "uring".
std::string_view to_string(backend_kind kind) noexcept;

// Parses a backend name; "io_uring" is another spelling of "uring".
std::optional<backend_kind> parse_backend(std::string_view name) noexcept;

// Why the kernel refused a backend: what() names the failed setup call, its
// errno and the likely cause, in one line.
struct backend_unavailable : std::runtime_error {
  backend_unavailable(backend_kind kind, std::error_code error, std::string failed_call);
  backend_kind kind;
  std::error_code error;
};

// Sets the backend up once and tears it down: nothing when `kind` is usable
// here, else why not.
std::optional<backend_unavailable> probe_backend(backend_kind kind);

// The best backend this kernel allows (uring, else epoll, else select) and,
// when it is not uring, why uring was passed over.
struct backend_choice {
  backend_kind kind;
  std::optional<backend_unavailable> passed_over;
};
backend_choice choose_best_backend();

// How a runtime is set up; the defaults suit a server.
struct runtime_options {
  // The most receive buffers (16 KiB each) lent at once across all streams
  // (1 to 65,535). When all are lent, receive() waits until one comes back.
  std::size_t receive_buffers = detail::buffer_pool::default_limit;
  // Writes a Chrome trace-event JSON file of every task, operation and loop
  // turn here (docs/tracing.md); empty: no tracing, and no cost but one branch per hook.
  std::string trace{};
  // Events the trace may hold; past it tracing stops and the file says so.
  std::size_t trace_limit = 1'000'000;
};

class runtime {
 public:
  // Sets up `kind`; throws backend_unavailable when the kernel refuses it,
  // std::invalid_argument when an option is out of range.
  explicit runtime(backend_kind kind = backend_kind::select, runtime_options options = {});
  // Cancels and drains what is still running, then releases the backend.
  ~runtime();
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  // The runtime of the calling thread; throws std::logic_error without one.
  static runtime& current();

  backend_kind backend() const noexcept { return kind_; }
  // Backend facts for logs: setup flags, set sizes.
  std::string describe_backend() const;

  // Runs the loop until `main` ends, then cancels and drains the spawned
  // tasks; returns main's value or rethrows its exception.
  template <class T>
  T run(task<T> main);

  // Starts a detached task owned by the runtime; `name` labels its errors.
  void spawn(task<void> t, std::string name = {}) { spawned_.spawn(std::move(t), std::move(name)); }
  task_group& spawned() noexcept { return spawned_; }

  // Closes the trace file (runtime_options::trace) validly now, `why` as its
  // last event, and stops tracing: for a program about to end without
  // returning from run (std::_Exit on a second stop signal). Without a
  // trace, or once closed, it does nothing.
  void close_trace(std::string_view why = {});

  // Backend operations in flight (for tests and statistics).
  std::size_t in_flight() const noexcept { return loop_.in_flight; }

  detail::loop_state& loop() noexcept { return loop_; }

 private:
  // Turns the loop until `done` is true.
  void run_until(const bool& done);
  // True when nothing is ready, timed or in flight: no task can ever resume.
  bool idle() const noexcept;
  void turn();
  void traced_turn();
  // The backend's wait: not at all when coroutines are ready, else until the nearest deadline.
  void wait_for_io();
  void drain() noexcept;

  backend_kind kind_;
  detail::loop_state loop_;
  std::unique_ptr<detail::backend> backend_;
  std::unique_ptr<detail::tracer> tracer_;
  task_group spawned_;
  const bool* stop_ = nullptr;  // run_until's flag: stop turning once it is set
};

namespace detail {

// Drives a main task to completion and keeps its outcome for runtime::run.
template <class T>
struct run_outcome {
  std::optional<std::conditional_t<std::is_void_v<T>, bool, T>> value;
  std::exception_ptr error;
  bool done = false;
};

template <class T>
task<void> drive(task<T> main, run_outcome<T>& out) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(main);
      out.value.emplace(true);
    } else {
      out.value.emplace(co_await std::move(main));
    }
  } catch (...) {
    out.error = std::current_exception();
  }
  out.done = true;
}

}  // namespace detail

template <class T>
T runtime::run(task<T> main) {
  detail::run_outcome<T> out;
  task<void> driver = detail::drive(std::move(main), out);
  cancel_scope root;
  driver.native().promise().scope = &root;
  detail::ready_node start;
  start.coroutine = driver.native();
  loop_.post(start);
  if (loop_.trace) detail::trace_task_posted(loop_, start, "main");
  run_until(out.done);
  drain();
  if (out.error) std::rethrow_exception(out.error);
  if constexpr (!std::is_void_v<T>) return std::move(*out.value);
}

}  // namespace switchboard
