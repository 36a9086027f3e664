// The loop: starting, completing and cancelling operations; timers; the
// ready queue; the runtime's turn. Backend-independent: the backends only
// see operations through backend.hpp.
#include "switchboard/runtime.hpp"

#include <cassert>
#include <cerrno>
#include <cstring>
#include <utility>

#include <fmt/core.h>

#include "backend.hpp"
#include "readiness.hpp"
#include "trace.hpp"
#include "switchboard/time.hpp"

namespace switchboard {

namespace detail {
namespace {

thread_local loop_state* this_thread_loop = nullptr;
thread_local runtime* this_thread_runtime = nullptr;

// Synchronous completions a coroutine may chain before it must yield.
constexpr int completion_budget = 64;

// A bit per op_code that moves `size` bytes.
constexpr unsigned transfers = 1u << static_cast<int>(op_code::recv) |
                               1u << static_cast<int>(op_code::send) |
                               1u << static_cast<int>(op_code::sendfile);

// A sleep completes at its deadline; any other operation is cancelled by it.
void on_deadline(timer_node& timer) {
  auto& op = static_cast<operation&>(timer);
  loop_state& loop = *this_thread_loop;
  if (op.code == op_code::wait && !op.owner) {
    loop.complete(op, 0);
  } else {
    loop.cancel(op, ETIMEDOUT);
  }
}

}  // namespace

loop_state* current_loop() noexcept { return this_thread_loop; }

bool start(operation& op, std::coroutine_handle<> waiter, cancel_scope* scope) {
  assert(this_thread_loop && "an operation started outside runtime::run");
  loop_state& loop = *this_thread_loop;
  op.coroutine = waiter;
  op.cancel_errno = 0;

  int res;
  if (scope && scope->cancelled()) {
    res = -scope->cancel_errno();
  } else if (op.code == op_code::wait) {
    res = (op.owner && static_cast<event*>(op.owner)->is_set()) ? 0 : -EAGAIN;
  } else if (op.fd < 0) {
    res = -EBADF;  // a default, closed or moved-from stream: no backend sees the number
  } else if ((transfers >> static_cast<int>(op.code)) & 1u && op.size == 0) {
    res = 0;  // a zero-length transfer completes at once on every backend
  } else if (readiness_table* table = loop.io->readiness) {
    res = table->try_now(op);
  } else {
    res = -EAGAIN;  // io_uring: the kernel performs it
  }

  if (res != -EAGAIN) {
    op.res = res;
    if (loop.budget > 0) {
      --loop.budget;
      if (loop.trace) loop.trace->op_started(op, res, false);
      return false;
    }
    if (loop.trace) loop.trace->op_started(op, res, true);
    loop.post(op);  // out of budget: finish through the queue, behind the others
    return true;
  }

  op.in_flight = true;
  if (loop.trace) loop.trace->op_started(op, -EAGAIN, false);
  if (scope) {
    scope->attach(op);
  } else {
    op.scope = nullptr;
  }
  if (op.has_deadline) {
    if (op.has_timeout) op.limit_by(clock::now() + op.timeout);
    op.fire = on_deadline;
    loop.timers.push(op);
  } else if (op.has_timeout) {
    op.fire = on_deadline;
    loop.timers.push_after(op, op.timeout);  // no clock read of its own
  }
  if (op.code == op_code::wait) {
    assert((op.owner || op.has_deadline) && "a wait with neither event nor deadline never ends");
    if (op.owner) static_cast<event*>(op.owner)->add(op);
  } else {
    ++loop.in_flight;
    loop.io->submit(op);
  }
  return true;
}

void loop_state::complete(operation& op, int res) noexcept {
  assert(op.in_flight);
  op.in_flight = false;
  if (op.code != op_code::wait) --in_flight;
  if (res == -ECANCELED && op.cancel_errno) res = -op.cancel_errno;
  op.res = res;
  if (trace) trace->op_completed(op, res);
  if (op.armed()) timers.remove(op);
  if (op.scope) op.scope->detach(op);
  post(op);
}

void loop_state::cancel(operation& op, int why) noexcept {
  if (!op.in_flight || op.cancel_errno) return;
  op.cancel_errno = why;
  if (trace) trace->begin_cancel(why);
  if (op.code == op_code::wait) {
    if (op.owner) static_cast<event*>(op.owner)->remove(op);
    complete(op, -ECANCELED);
  } else {
    io->cancel(op);
  }
  if (trace) trace->end_cancel();
}

timer_node* timer_heap::top() const noexcept {
  assert(unstamped_ == 0 && "a timer armed by push_after has no deadline before stamp()");
  timer_node* earliest = heap_.empty() ? nullptr : heap_.front();
  for (timer_node* node : staged_) {
    if (!earliest || node->when < earliest->when) earliest = node;
  }
  return earliest;
}

void timer_heap::push(timer_node& node) {
  node.heap_index = staged_bit | staged_.size();
  staged_.push_back(&node);
}

void timer_heap::push_after(timer_node& node, clock::duration delay) {
  node.when = clock::time_point(delay);
  node.heap_index = staged_bit | delay_bit | staged_.size();
  staged_.push_back(&node);
  ++unstamped_;
}

void timer_heap::stamp(clock::time_point now) noexcept {
  if (unstamped_ == 0) return;
  for (timer_node* node : staged_) {
    if (!(node->heap_index & delay_bit)) continue;
    node->when = now + node->when.time_since_epoch();
    node->heap_index &= ~delay_bit;
  }
  unstamped_ = 0;
}

void timer_heap::remove(timer_node& node) noexcept {
  std::size_t index = node.heap_index;
  node.heap_index = timer_node::not_armed;
  if (index & staged_bit) {
    if (index & delay_bit) --unstamped_;
    index &= ~(staged_bit | delay_bit);
    assert(index < staged_.size() && staged_[index] == &node);
    timer_node* last = staged_.back();
    staged_.pop_back();
    if (last == &node) return;
    staged_[index] = last;
    last->heap_index = (last->heap_index & delay_bit) | staged_bit | index;
    return;
  }
  assert(index < heap_.size() && heap_[index] == &node);
  timer_node* last = heap_.back();
  heap_.pop_back();
  if (last == &node) return;
  place(index, last);
  sift_down(index);
  sift_up(last->heap_index);
}

void timer_heap::promote_staged() {
  for (timer_node* node : staged_) {
    heap_.push_back(node);
    node->heap_index = heap_.size() - 1;
    sift_up(node->heap_index);
  }
  staged_.clear();
}

timer_node* timer_heap::pop_expired(clock::time_point now) {
  stamp(now);
  promote_staged();
  if (heap_.empty() || heap_.front()->when > now) return nullptr;
  timer_node* earliest = heap_.front();
  remove(*earliest);
  return earliest;
}

void timer_heap::sift_up(std::size_t index) noexcept {
  timer_node* node = heap_[index];
  while (index > 0) {
    std::size_t parent = (index - 1) / 2;
    if (!(node->when < heap_[parent]->when)) break;
    place(index, heap_[parent]);
    index = parent;
  }
  place(index, node);
}

void timer_heap::sift_down(std::size_t index) noexcept {
  timer_node* node = heap_[index];
  const std::size_t count = heap_.size();
  for (;;) {
    std::size_t child = 2 * index + 1;
    if (child >= count) break;
    if (child + 1 < count && heap_[child + 1]->when < heap_[child]->when) ++child;
    if (!(heap_[child]->when < node->when)) break;
    place(index, heap_[child]);
    index = child;
  }
  place(index, node);
}

// A member task of a task_group: runs the task in its own scope, reports an
// escaping exception, and frees its frame when done.
struct group_member {
  struct promise_type : promise_base, ready_node {
    promise_type(task_group& group, task<void>&, std::string&) : own_scope(&group.scope()) {
      scope = &own_scope;
      coroutine = std::coroutine_handle<promise_type>::from_promise(*this);
    }
    group_member get_return_object() noexcept { return {this}; }
    std::suspend_never final_suspend() const noexcept { return {}; }
    void return_void() const noexcept {}
    void unhandled_exception() const noexcept { std::terminate(); }

    cancel_scope own_scope;
  };
  promise_type* promise;
};

group_member run_member(task_group& group, task<void> body, std::string name) {
  try {
    co_await std::move(body);
  } catch (...) {
    group.report(name, std::current_exception());
  }
  group.finished();
}

}  // namespace detail

// cancel_scope --------------------------------------------------------------

cancel_scope::cancel_scope(cancel_scope* parent) noexcept : parent_(parent) {
  if (!parent_) return;
  next_sibling_ = parent_->first_child_;
  if (next_sibling_) next_sibling_->prev_sibling_ = this;
  parent_->first_child_ = this;
  cancel_errno_ = parent_->cancel_errno_;
}

cancel_scope::~cancel_scope() {
  assert(!first_op_ && "a scope ended with an operation in flight");
  for (cancel_scope* child = first_child_; child; child = child->next_sibling_) {
    child->parent_ = nullptr;
  }
  if (!parent_) return;
  if (prev_sibling_) {
    prev_sibling_->next_sibling_ = next_sibling_;
  } else {
    parent_->first_child_ = next_sibling_;
  }
  if (next_sibling_) next_sibling_->prev_sibling_ = prev_sibling_;
}

void cancel_scope::cancel(std::errc why) noexcept {
  if (cancel_errno_) return;
  cancel_errno_ = static_cast<int>(why);
  if (detail::loop_state* loop = detail::current_loop()) {
    // Cancelling never resumes anything inline (completions are queued), so
    // the lists cannot change under us except for the op being cancelled.
    for (detail::operation* op = first_op_; op;) {
      detail::operation* next = op->scope_next;
      loop->cancel(*op, cancel_errno_);
      op = next;
    }
  }
  for (cancel_scope* child = first_child_; child; child = child->next_sibling_) {
    child->cancel(why);
  }
}

// deadline_scope --------------------------------------------------------------

deadline_scope::deadline_scope(cancel_scope* parent, clock::time_point deadline)
    : cancel_scope(parent) {
  timer_.scope = this;
  timer_.when = deadline;
  timer_.fire = [](detail::timer_node& node) {
    static_cast<expiry&>(node).scope->cancel(std::errc::timed_out);
  };
  detail::this_thread_loop->timers.push(timer_);
}

deadline_scope::~deadline_scope() {
  if (timer_.armed()) detail::this_thread_loop->timers.remove(timer_);
}

// event ---------------------------------------------------------------------

event::~event() { assert(waiters_.empty() && "an event destroyed with waiters"); }

void event::set() noexcept {
  set_ = true;
  detail::loop_state* loop = detail::current_loop();
  while (detail::operation* op = waiters_.pop_front()) loop->complete(*op, 0);
}

event::wait_operation event::wait() noexcept {
  wait_operation op;
  op.code = detail::op_code::wait;
  op.owner = this;
  return op;
}

void event::add(detail::operation& op) noexcept { waiters_.push_back(op); }

void event::remove(detail::operation& op) noexcept { waiters_.remove(op); }

// task_group ----------------------------------------------------------------

task_group::task_group(cancel_scope* parent) noexcept : scope_(parent) { empty_.set(); }

task_group::~task_group() {
  if (live_ != 0) {
    fmt::print(stderr, "switchboard: a task_group was destroyed with {} live tasks; join it first\n",
               live_);
    std::terminate();
  }
}

void task_group::spawn(task<void> t, std::string name) {
  detail::loop_state* loop = detail::current_loop();
  if (!loop) throw std::logic_error("task_group::spawn needs a runtime on this thread");
  ++live_;
  ++total_;
  empty_.reset();
  // The tracer names the task's track after `name`: copied then, else moved.
  const bool traced = loop->trace != nullptr;
  auto member = detail::run_member(*this, std::move(t), traced ? name : std::move(name));
  loop->post(*member.promise);
  if (traced) loop->trace->task_posted(*member.promise, name);
}

void task_group::finished() noexcept {
  if (--live_ == 0) empty_.set();
}

void task_group::report(const std::string& name, std::exception_ptr error) const noexcept {
  std::string what = "unknown exception";
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
  }
  fmt::print(stderr, "task {} ended with an exception: {}\n", name.empty() ? "(unnamed)" : name,
             what);
}

// runtime -------------------------------------------------------------------

runtime::runtime(backend_kind kind, runtime_options options) : kind_(kind) {
  if (detail::this_thread_loop) throw std::logic_error("one switchboard runtime per thread");
  if (options.receive_buffers < 1 || options.receive_buffers > detail::buffer_pool::max_limit) {
    throw std::invalid_argument(fmt::format("receive_buffers must be 1 to {}, not {}",
                                            detail::buffer_pool::max_limit, options.receive_buffers));
  }
  loop_.buffers.set_limit(options.receive_buffers);
  switch (kind) {
    case backend_kind::select: backend_ = detail::make_select_backend(loop_); break;
    case backend_kind::epoll: backend_ = detail::make_epoll_backend(loop_); break;
    case backend_kind::uring: backend_ = detail::make_uring_backend(loop_); break;
  }
  loop_.io = backend_.get();
  if (!options.trace.empty()) {
    tracer_ = std::make_unique<detail::tracer>(loop_, options.trace, options.trace_limit, to_string(kind));
    loop_.trace = tracer_.get();
  }
  detail::this_thread_loop = &loop_;
  detail::this_thread_runtime = this;
}

void runtime::close_trace(std::string_view why) {
  if (tracer_) tracer_->close(why);
}

runtime::~runtime() {
  drain();
  if (tracer_) tracer_->close();
  loop_.trace = nullptr;
  backend_.reset();
  detail::this_thread_loop = nullptr;
  detail::this_thread_runtime = nullptr;
}

runtime& runtime::current() {
  if (!detail::this_thread_runtime) throw std::logic_error("no switchboard runtime on this thread");
  return *detail::this_thread_runtime;
}

std::string runtime::describe_backend() const { return backend_->describe(); }

void runtime::run_until(const bool& done) {
  stop_ = &done;
  while (!done) {
    if (idle()) {
      throw std::logic_error(
          "switchboard: every task is waiting and nothing can wake one (no I/O, no timer)");
    }
    turn();
  }
}

bool runtime::idle() const noexcept {
  return loop_.ready.empty() && loop_.timers.empty() && loop_.in_flight == 0;
}

void runtime::turn() {
  if (loop_.trace) {
    traced_turn();
    return;
  }
  const auto now = clock::now();
  while (detail::timer_node* timer = loop_.timers.pop_expired(now)) timer->fire(*timer);

  detail::ready_queue batch = loop_.ready.take_all();
  while (detail::ready_node* node = batch.pop()) {
    loop_.budget = detail::completion_budget;
    node->coroutine.resume();
  }
  if (stop_ && *stop_) return;  // the main task just ended: do not wait for I/O
  wait_for_io();
}

// turn() with the tracer's hooks around each phase: kept apart so that the
// untraced turn pays a single branch, not one per phase and per coroutine.
void runtime::traced_turn() {
  detail::tracer& trace = *loop_.trace;
  trace.turn_begin();
  const auto now = clock::now();
  std::size_t fired = 0;
  trace.set_cause("timer");
  while (detail::timer_node* timer = loop_.timers.pop_expired(now)) {
    timer->fire(*timer);
    ++fired;
  }
  trace.timers_fired(fired);
  trace.set_cause("");

  detail::ready_queue batch = loop_.ready.take_all();
  while (detail::ready_node* node = batch.pop()) {
    loop_.budget = detail::completion_budget;
    // The limit may stop the trace in the middle of the turn.
    detail::tracer* traced = loop_.trace;
    if (traced) traced->before_run(*node);
    node->coroutine.resume();
    if (traced && loop_.trace) traced->after_run();
  }
  if (!(stop_ && *stop_)) wait_for_io();  // unless the main task just ended
  if (loop_.trace) loop_.trace->turn_end();
}

void runtime::wait_for_io() {
  std::optional<std::chrono::nanoseconds> timeout;
  if (!loop_.ready.empty()) {
    timeout = std::chrono::nanoseconds::zero();
  } else if (!loop_.timers.empty()) {
    const auto now = clock::now();
    loop_.timers.stamp(now);
    timeout = std::max(std::chrono::nanoseconds::zero(), loop_.timers.top()->when - now);
  } else if (loop_.in_flight == 0) {
    return;  // nothing to wait for
  }
  if (loop_.trace) {
    detail::tracer& trace = *loop_.trace;
    trace.wait_begin(timeout);
    backend_->wait(timeout);
    if (loop_.trace) loop_.trace->wait_end();
    return;
  }
  backend_->wait(timeout);
}

void runtime::drain() noexcept {
  stop_ = nullptr;
  spawned_.cancel();
  while (!idle()) turn();
  if (spawned_.size() > 0) {
    // Their frames are leaked, not destroyed: something may still point into them.
    fmt::print(stderr, "switchboard: {} tasks still wait on something outside the runtime\n",
               spawned_.size());
  }
}

}  // namespace switchboard
