// The operation record: what an awaiter hands to the backend.
//
// A detail type, public only because it lives inside coroutine frames: every
// awaitable I/O call (accept, recv, send, ...) *is* an operation, so starting
// one allocates nothing. Its address is the io_uring user_data and the
// readiness backends' cookie; see runtime/src/backend.hpp for the lifetime rule.
#pragma once

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <limits>

#include <poll.h>
#include <sys/socket.h>

#include "switchboard/task.hpp"

namespace switchboard::detail {

using clock = std::chrono::steady_clock;

// Something the loop runs when it reaches the front of the ready queue.
struct ready_node {
  ready_node* next_ready = nullptr;
  void (*run)(ready_node&) = nullptr;
};

// An entry in the loop's timer heap; `fire` runs when `when` has passed.
struct timer_node {
  static constexpr std::size_t not_armed = std::numeric_limits<std::size_t>::max();
  clock::time_point when{};
  std::size_t heap_index = not_armed;
  void (*fire)(timer_node&) = nullptr;

  bool armed() const noexcept { return heap_index != not_armed; }
};

enum class op_code : std::uint8_t {
  accept,    // accept4(fd, addr, addr_len, SOCK_NONBLOCK | SOCK_CLOEXEC)
  recv,      // recv(fd, data, size, flags)
  send,      // send(fd, data, size, flags | MSG_NOSIGNAL)
  connect,   // connect(fd, addr, addr_len), then SO_ERROR
  recvmsg,   // recvmsg(fd, msg, flags)
  sendmsg,   // sendmsg(fd, msg, flags | MSG_NOSIGNAL)
  poll,      // wait until fd is ready for poll_events; result is the revents
  sendfile,  // sendfile(fd, source_fd, &offset, size)
  wait,      // no fd, handled by the loop: completes when its owner event is
             // set, or, without an owner (a sleep), when its deadline passes
};

// Which readiness an operation waits for on a readiness backend.
enum class direction : std::uint8_t { read, write };

struct operation : ready_node, timer_node {
  op_code code = op_code::wait;
  bool has_deadline = false;  // timer_node::when is this operation's deadline
  bool has_timeout = false;   // `timeout` limits how long it may wait (limit_for)
  bool transfer_all = false;  // recv/send/sendfile: finish partial transfers
  bool connect_started = false;
  bool runtime_buffer = false;  // recv into a chunk of the loop's buffer_pool (data is null)
  bool in_flight = false;     // handed to the backend, completion still owed
  std::uint8_t backend_stage = 0;  // the backend's own progress marker (see starved_stage)
  std::uint16_t buffer_id = 0xffff;  // runtime_buffer: the chunk that holds the bytes
  int cancel_errno = 0;       // ECANCELED or ETIMEDOUT once cancellation was asked for
  int fd = -1;
  int res = 0;                // >= 0, or -errno, like a CQE's res
  int flags = 0;
  short poll_events = 0;
  int source_fd = -1;         // sendfile
  std::int64_t offset = 0;    // sendfile: position in source_fd
  int pipe_fds[2] = {-1, -1}; // sendfile on io_uring: the pipe the bytes pass through
  std::size_t in_pipe = 0;    // ... and how many of them are in it now
  void* data = nullptr;
  std::size_t size = 0;
  std::size_t done = 0;       // bytes moved so far when transfer_all is set
  sockaddr* addr = nullptr;
  socklen_t addr_len = 0;     // in/out for accept
  msghdr* msg = nullptr;
  void* owner = nullptr;      // wait: the event it waits on
  std::coroutine_handle<> waiter;
  cancel_scope* scope = nullptr;
  operation* scope_prev = nullptr;   // the scope's list of operations in flight
  operation* scope_next = nullptr;
  operation* next_waiter = nullptr;  // the waiter_list it is in: ops parked on one
  operation* prev_waiter = nullptr;  // fd, waiting on one event, or starved of buffers
  clock::duration timeout{};         // has_timeout: the longest wait allowed

  direction wants() const noexcept {
    // A bit per op_code that writes; wants() runs several times per operation.
    constexpr unsigned writers = 1u << static_cast<int>(op_code::send) |
                                 1u << static_cast<int>(op_code::sendmsg) |
                                 1u << static_cast<int>(op_code::connect) |
                                 1u << static_cast<int>(op_code::sendfile);
    if (code == op_code::poll) return (poll_events & POLLIN) ? direction::read : direction::write;
    return (writers >> static_cast<int>(code)) & 1u ? direction::write : direction::read;
  }

  // Fails the operation with timed_out unless it completes by `deadline`.
  void limit_by(clock::time_point deadline) noexcept {
    if (!has_deadline || deadline < when) when = deadline;
    has_deadline = true;
  }
  // Fails it with timed_out once it has waited `duration`. The clock is read
  // only if it has to wait (start() folds this into `when`), so an operation
  // that completes at once costs no clock read and no timer.
  void limit_for(clock::duration duration) noexcept {
    if (!has_timeout || duration < timeout) timeout = duration;
    has_timeout = true;
  }
};

// backend_stage of a receive() that waits for a buffer to be lent: it is in
// no kernel request and on no fd's list, only on its backend's list of
// starved receives, so cancelling or forgetting it completes it directly.
inline constexpr std::uint8_t starved_stage = 0x80;

// An intrusive FIFO of operations linked through next_waiter/prev_waiter; an
// operation is in at most one at a time. Nothing allocates, and removing any
// member costs O(1) (cancelling one of ten thousand reads on one socket).
class waiter_list {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  operation* front() const noexcept { return head_; }

  void push_back(operation& op) noexcept {
    op.next_waiter = nullptr;
    op.prev_waiter = tail_;
    (tail_ ? tail_->next_waiter : head_) = &op;
    tail_ = &op;
  }
  void push_front(operation& op) noexcept {
    op.prev_waiter = nullptr;
    op.next_waiter = head_;
    (head_ ? head_->prev_waiter : tail_) = &op;
    head_ = &op;
  }
  // `op` must be in this list.
  void remove(operation& op) noexcept {
    (op.prev_waiter ? op.prev_waiter->next_waiter : head_) = op.next_waiter;
    (op.next_waiter ? op.next_waiter->prev_waiter : tail_) = op.prev_waiter;
    op.next_waiter = op.prev_waiter = nullptr;
  }
  operation* pop_front() noexcept {
    operation* op = head_;
    if (op) remove(*op);
    return op;
  }

 private:
  operation* head_ = nullptr;
  operation* tail_ = nullptr;
};

// Starts `op` for the coroutine `waiter`. Returns false when it completed at
// once (the coroutine continues without suspending), true when the loop will
// resume `waiter` after the operation's completion.
bool start(operation& op, std::coroutine_handle<> waiter, cancel_scope* scope);

// The awaitable face of an operation. Derived adds await_resume() and, when
// the record points into itself (a msghdr, an address), a prepare() that sets
// those pointers: awaiters may be moved until they are awaited.
template <class Derived>
struct awaitable_operation : operation {
  bool await_ready() const noexcept { return false; }
  template <class Promise>
  bool await_suspend(std::coroutine_handle<Promise> h) {
    static_cast<Derived*>(this)->prepare();
    return start(*this, h, scope_of(h));
  }
  void prepare() noexcept {}
};

}  // namespace switchboard::detail
