// The loop's own state: the ready queue and the timer heap. A detail type;
// services use runtime.hpp, time.hpp and cancel.hpp instead.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "switchboard/buffer.hpp"
#include "switchboard/detail/operation.hpp"

namespace switchboard::detail {

class backend;
class tracer;

// An intrusive FIFO of ready_nodes: posting allocates nothing.
class ready_queue {
 public:
  bool empty() const noexcept { return head_ == nullptr; }

  void push(ready_node& node) noexcept {
    node.next_ready = nullptr;
    if (tail_) {
      tail_->next_ready = &node;
    } else {
      head_ = &node;
    }
    tail_ = &node;
  }

  ready_node* pop() noexcept {
    ready_node* node = head_;
    if (node) {
      head_ = node->next_ready;
      if (!head_) tail_ = nullptr;
    }
    return node;
  }

  // Moves every node out, so that nodes posted while these run wait for the next turn.
  ready_queue take_all() noexcept {
    ready_queue batch;
    batch.head_ = head_;
    batch.tail_ = tail_;
    head_ = tail_ = nullptr;
    return batch;
  }

 private:
  ready_node* head_ = nullptr;
  ready_node* tail_ = nullptr;
};

// A binary min-heap of timer_nodes ordered by deadline; each node knows its
// index, so removing an arbitrary timer (an operation that finished before
// its deadline) costs O(log n) and allocates nothing.
//
// New timers wait in an unsorted staging list until the next pop_expired()
// (the start of the loop's next turn): most belong to operations that
// complete in the wait between (on io_uring every operation waits), and
// leave the list in O(1) without touching the heap. top() looks at both.
class timer_heap {
 public:
  bool empty() const noexcept { return heap_.empty() && staged_.empty(); }
  std::size_t size() const noexcept { return heap_.size() + staged_.size(); }
  // The earliest timer, or null; stamp() must have run since the last push_after().
  timer_node* top() const noexcept;

  void push(timer_node& node);
  // Arms `node` to fire `delay` after the loop's next clock reading
  // (stamp()): later than `delay` from now by at most the rest of the
  // turn, never earlier, and the operation that waits reads no clock itself.
  void push_after(timer_node& node, clock::duration delay);
  // Gives the timers armed by push_after since the last stamp their deadline.
  void stamp(clock::time_point now) noexcept;
  void remove(timer_node& node) noexcept;
  // Removes and returns the earliest timer if its deadline is at or before `now`.
  timer_node* pop_expired(clock::time_point now);

 private:
  // Set in heap_index for a staged node: the rest is its index in staged_.
  static constexpr std::size_t staged_bit = ~(timer_node::not_armed >> 1);
  // Also set for a staged node whose `when` holds a delay, not yet a deadline.
  static constexpr std::size_t delay_bit = staged_bit >> 1;
  void promote_staged();
  void sift_up(std::size_t index) noexcept;
  void sift_down(std::size_t index) noexcept;
  void place(std::size_t index, timer_node* node) noexcept {
    heap_[index] = node;
    node->heap_index = index;
  }
  std::vector<timer_node*> heap_;
  std::vector<timer_node*> staged_;
  std::size_t unstamped_ = 0;  // staged nodes with delay_bit
};

// What backends and awaiters share with the loop.
struct loop_state {
  ready_queue ready;
  timer_heap timers;
  buffer_pool buffers;
  backend* io = nullptr;
  // The tracer (runtime_options::trace), or null: every hook is one branch on it.
  tracer* trace = nullptr;
  // Backend operations started and not yet completed.
  std::size_t in_flight = 0;
  // Operations a coroutine may still complete without suspending before it
  // must yield (reset whenever the loop resumes a coroutine), so that a
  // connection whose socket is always ready cannot starve the others.
  int budget = 0;

  // Queues `node` to run at the loop's next turn.
  void post(ready_node& node) noexcept { ready.push(node); }

  // Records `res` (>= 0 or -errno) as the result of `op` and queues its
  // coroutine; called exactly once per started operation.
  void complete(operation& op, int res) noexcept;

  // Asks for `op` to end early with -`why` (ECANCELED or ETIMEDOUT); its
  // completion still comes through complete().
  void cancel(operation& op, int why) noexcept;
};

// Names the task whose first run `node` is, when tracing (runtime::run's main).
void trace_task_posted(loop_state& loop, ready_node& node, std::string_view name);

// The loop of the runtime running on this thread; null when there is none.
loop_state* current_loop() noexcept;

}  // namespace switchboard::detail
