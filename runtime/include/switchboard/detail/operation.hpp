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

// A coroutine waiting in the loop's ready queue to be resumed.
struct ready_node {
  ready_node* next_ready = nullptr;
  std::coroutine_handle<> coroutine;
};

// An entry in the loop's timer heap; `fire` runs when `when` has passed.
// `when` and `fire` are set by whoever arms it.
struct timer_node {
  static constexpr std::size_t not_armed = std::numeric_limits<std::size_t>::max();
  clock::time_point when;
  std::size_t heap_index = not_armed;
  void (*fire)(timer_node&);

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

// Every operation is made (stream::read_some, wait_ready, ...) and started
// on the hot path, so the record is kept small and cheap to make: what the
// call works on shares storage according to `code`, and what is written when
// the operation starts or completes before anything reads it has no
// initialiser (making one costs a few stores, not a clear of the record).
// The coroutine that awaits it is ready_node::coroutine.
struct operation : ready_node, timer_node {
  op_code code = op_code::wait;
  bool has_deadline = false;  // timer_node::when is this operation's deadline
  bool has_timeout = false;   // `timeout` limits how long it may wait (limit_for)
  bool transfer_all = false;  // recv/send/sendfile: finish partial transfers
  bool connect_started = false;
  bool runtime_buffer = false;  // recv into a chunk of the loop's buffer_pool (data is null)
  bool in_flight = false;     // handed to the backend, completion still owed
  std::uint8_t backend_stage = 0;  // the backend's own progress marker (see starved_stage)
  int fd = -1;
  int flags = 0;
  std::size_t size = 0;       // recv, send, sendfile
  std::size_t done = 0;       // bytes moved so far when transfer_all is set
  union {
    void* data = nullptr;     // recv, send
    sockaddr* addr;           // accept (null: the peer is not asked for), connect
    msghdr* msg;              // recvmsg, sendmsg
    void* owner;              // wait: the event it waits on, null for a sleep
    std::int64_t offset;      // sendfile: position in source_fd
  };
  union {
    socklen_t addr_len = 0;   // accept (in/out), connect
    short poll_events;        // poll
    int source_fd;            // sendfile
    std::uint16_t buffer_id;  // runtime_buffer: the chunk that holds the bytes
  };
  int pipe_fds[2] = {-1, -1}; // sendfile on io_uring: the pipe the bytes pass through
  std::size_t in_pipe = 0;    // ... and how many of them are in it now

  // Written before anything reads them: by start(), by the list that takes
  // the operation in, at completion, or (timeout) by limit_for.
  int res;                    // >= 0, or -errno, like a CQE's res
  int cancel_errno;           // ECANCELED or ETIMEDOUT once cancellation was asked for
  cancel_scope* scope;        // in_flight: the scope whose list it is in, or null
  operation* scope_prev;      // the scope's list of operations in flight
  operation* scope_next;
  operation* next_waiter;     // the waiter_list it is in: ops parked on one
  operation* prev_waiter;     // fd, waiting on one event, or starved of buffers
  clock::duration timeout;    // has_timeout: the longest wait allowed

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
