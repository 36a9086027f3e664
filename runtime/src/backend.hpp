// PRIVATE: the one interface every backend implements. Only the loop and the
// three backend_*.cpp files include this header.
//
// THE LIFETIME RULE
// A coroutine frame with an operation in flight is never destroyed. The
// operation record (detail::operation) lives in the awaiting coroutine's
// frame, next to the buffer it names, and its address is what the kernel
// (io_uring user_data) or the readiness backend (its per-fd wait list) holds.
// So:
//  - every operation that submit() accepts is completed exactly once, through
//    loop_state::complete(), also when it was cancelled;
//  - cancel() only *asks*: on io_uring the kernel may keep writing into the
//    buffer until that request's own CQE arrives, even after a successful
//    IORING_OP_ASYNC_CANCEL, and close() does not cancel pending requests at
//    all; the coroutine resumes only after that CQE. A readiness backend
//    takes the operation off its wait list (and out of its interest set)
//    before completing it with -ECANCELED;
//  - a receive starved of buffers (starved.hpp) is in no request and on no
//    fd's list: cancel() and forget() complete it directly, and it is never
//    submitted again after that;
//  - forget() runs before every close through the runtime, and when a new
//    number is handed to unique_fd; after it, nothing the backend keeps or
//    has queued names that number, so no operation meets a file that
//    reuses it;
//  - frames are destroyed only after their coroutine has finished, and a
//    coroutine cannot finish while it is suspended on an operation; shutdown
//    cancels everything and keeps reaping until nothing is in flight.
// Therefore the record, the buffer and the fd outlive the kernel's interest.
// tests/runtime/ tries to break each of these on every backend.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

#include "switchboard/detail/loop.hpp"
#include "switchboard/runtime.hpp"

namespace switchboard::detail {

class readiness_table;

class backend {
 public:
  // `readiness`: the table through which start() tries an operation at once
  // (readiness_table::try_now, readiness.hpp), without a virtual call; the
  // readiness backends (select, epoll) pass theirs. io_uring passes none:
  // the kernel performs every operation, so each is submitted untried.
  explicit backend(readiness_table* readiness = nullptr) noexcept : readiness(readiness) {}
  virtual ~backend() = default;

  readiness_table* const readiness;

  virtual backend_kind kind() const noexcept = 0;

  // Takes `op` in flight; the backend completes it later through the loop.
  virtual void submit(operation& op) = 0;

  // Asks for `op` (in flight) to end early; see the lifetime rule above.
  virtual void cancel(operation& op) = 0;

  // Waits for completions at most `timeout` (forever when empty, not at all
  // when zero) and completes the operations that are done.
  virtual void wait(std::optional<std::chrono::nanoseconds> timeout) = 0;

  // `fd` is about to be closed, or is a new file under a number that may
  // have been closed behind the runtime's back: complete what waits on it
  // with -EBADF and drop what the backend remembers about the number.
  virtual void forget(int fd) noexcept = 0;

  // One line of backend facts for statistics and logs (flags, set sizes).
  virtual std::string describe() const = 0;
};

// Each factory throws backend_unavailable when the kernel refuses the
// mechanism; `loop` receives the completions.
std::unique_ptr<backend> make_select_backend(loop_state& loop);
std::unique_ptr<backend> make_epoll_backend(loop_state& loop);
std::unique_ptr<backend> make_uring_backend(loop_state& loop);

// Performs `op`'s system call once on its non-blocking fd: the result, or
// -EAGAIN when the fd is not ready. With transfer_all, partial transfers are
// continued and counted in op.done until the whole buffer moved or EAGAIN.
// A receive() borrows its chunk from `buffers`.
int attempt(operation& op, buffer_pool& buffers) noexcept;
inline int attempt(operation& op) noexcept { return attempt(op, current_loop()->buffers); }

}  // namespace switchboard::detail
