// io_uring (liburing): completion. Each operation becomes its own SQE
// (accept, recv, send, connect, recvmsg, sendmsg; poll_add only for plain
// readiness waits), submitted in one batch per loop turn, and completes from
// its CQE. user_data is the operation's address: see the lifetime rule in
// backend.hpp for why that is safe, cancellation included.
//
// The ring asks for IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN
// (measured markedly better for many small sockets ops) and falls back
// without them on kernels that answer EINVAL. With DEFER_TASKRUN completions
// are only posted when this thread enters the kernel asking for events, so
// every wait() enters (submit_and_get_events / submit_and_wait_timeout) even
// when it must not block.
#include "switchboard_config.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <fmt/core.h>

#include "backend.hpp"
#include "starved.hpp"
#include "trace.hpp"

#if SWITCHBOARD_HAVE_URING
#include <liburing.h>

namespace switchboard::detail {
namespace {

constexpr unsigned submission_entries = 4096;
constexpr unsigned completion_entries = 4 * submission_entries;

// The provided buffer ring for receive(): room for up to 1024 chunks of the
// loop's pool (16 MiB of address space), fewer when the pool's limit is
// lower, since the ring's size must be a power of two.
constexpr unsigned max_buffer_ring_entries = 1024;
// How many chunks the ring offers at first, topped up before every wait.
// The kernel takes chunks in ring order and a used one goes back at the
// end, so every chunk offered is written in turn: offering all 1,024 had
// the kernel fault in a fresh page on each of the first 1,024 receives and
// then cycle through 16 MiB. A few chunks stay hot instead; the target
// doubles whenever a receive finds the ring empty (more completions in one
// wait than it offers).
constexpr unsigned initial_lend_target = 64;
constexpr std::uint16_t buffer_group = 0;

// An SQE's length is 32 bits and a CQE's result a signed 32-bit int: one
// request moves at most 1 GiB, and a transfer continues from op.done.
constexpr std::size_t max_request_bytes = std::size_t{1} << 30;

// Low bit of user_data: the CQE belongs to a poll_add that an operation
// waits on after its own SQE answered -EAGAIN (operations are aligned, so
// the bit is free).
constexpr std::uintptr_t poll_stage = 1;

class uring_backend final : public backend {
 public:
  explicit uring_backend(loop_state& loop) : loop_(loop), starved_(loop) {
    const unsigned optional_flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    // Newest flags first; older kernels reject unknown setup flags with EINVAL.
    for (unsigned flags : {IORING_SETUP_CQSIZE | optional_flags, unsigned{IORING_SETUP_CQSIZE}, 0u}) {
      io_uring_params params{};
      params.flags = flags;
      params.cq_entries = completion_entries;
      const int res = io_uring_queue_init_params(submission_entries, &ring_, &params);
      if (res == 0) {
        flags_ = flags;
        skip_cancel_cqes_ = (params.features & IORING_FEAT_CQE_SKIP) != 0;
        // Every wait enters the kernel; a registered ring fd spares each
        // enter the file table lookup (5.18+; older kernels keep the fd).
        ring_fd_registered_ = io_uring_register_ring_fd(&ring_) == 1;
        setup_buffer_ring();
        return;
      }
      if (res != -EINVAL) fail(-res);
    }
    fail(EINVAL);
  }

  ~uring_backend() override {
    io_uring_queue_exit(&ring_);
    std::free(buffer_ring_);
    for (auto [read_end, write_end] : spare_pipes_) {
      ::close(read_end);
      ::close(write_end);
    }
  }

  backend_kind kind() const noexcept override { return backend_kind::uring; }

  void submit(operation& op) override {
    track(op);
    prepare(op);
  }

  void cancel(operation& op) override {
    if (starved_receives::holds(op)) {
      starved_.complete(op, -ECANCELED);  // no request exists to cancel
      return;
    }
    queue_cancel(op);
  }

  void wait(std::optional<std::chrono::nanoseconds> timeout) override {
    refill_buffer_ring();
    feed_starved();
    int res;
    if (timeout && timeout->count() == 0) {
      res = io_uring_submit_and_get_events(&ring_);
    } else {
      io_uring_cqe* cqe = nullptr;
      __kernel_timespec ts{};
      if (timeout) {
        ts.tv_sec = timeout->count() / 1'000'000'000;
        ts.tv_nsec = timeout->count() % 1'000'000'000;
      }
      res = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, timeout ? &ts : nullptr, nullptr);
    }
    // -ETIME: timed out; -EINTR: a signal; -EBUSY: completions are backlogged
    // in the kernel (CQ overflow) until we reap. All are answered by reaping.
    (void)res;
    reap();
  }

  // close() does not cancel requests in flight on the fd (they hold their
  // own reference to the file and would wait forever): cancel them, and let
  // them report EBADF as they do on the readiness backends.
  void forget(int fd) noexcept override {
    starved_.forget(fd);
    if (static_cast<std::size_t>(fd) >= in_flight_by_fd_.size() || in_flight_by_fd_[fd].empty()) return;
    for (operation* op = in_flight_by_fd_[fd].front(); op; op = op->next_waiter) {
      if (op->cancel_errno) continue;
      op->cancel_errno = EBADF;
      queue_cancel(*op);
    }
    // Until it is submitted an SQE names its fd by number only. Submitted
    // now, while the number is still this file's, nothing queued for it can
    // meet a file that an accept earlier in the batch opens under the same
    // number once it is closed.
    submit_queued();
  }

  std::string describe() const override {
    std::string flags;
    if (flags_ & IORING_SETUP_SINGLE_ISSUER) flags += " SINGLE_ISSUER";
    if (flags_ & IORING_SETUP_DEFER_TASKRUN) flags += " DEFER_TASKRUN";
    return fmt::format("io_uring, sq {} cq {}, flags{}{}", ring_.sq.ring_entries,
                       ring_.cq.ring_entries, flags.empty() ? " none" : flags,
                       ring_fd_registered_ ? ", ring fd registered" : "");
  }

 private:
  struct completion {
    std::uint64_t tag;
    int res;
    unsigned flags;
  };

  [[noreturn]] static void fail(int err) {
    throw backend_unavailable(backend_kind::uring, std::error_code(err, std::generic_category()),
                              "io_uring_setup failed");
  }

  io_uring_sqe* next_sqe() {
    for (;;) {
      if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) return sqe;
      submit_queued();  // the SQ is full: hand it to the kernel, take a fresh slot
    }
  }

  // Submits what is queued without completing anything: completions are
  // only taken out of the CQ (so that a backlog can flush and submission
  // go on), and handled at the next reap(). Callers may be walking a list of
  // operations (a scope's cancel, forget) that a completion would change.
  void submit_queued() noexcept {
    while (io_uring_sq_ready(&ring_) > 0) {
      const int res = io_uring_submit(&ring_);
      if (res == -EBUSY) {
        take_completions();
      } else if (res <= 0 && res != -EINTR) {
        return;  // left queued for the next wait()
      }
    }
  }

  void queue_cancel(operation& op) {
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_cancel64(sqe, reinterpret_cast<std::uintptr_t>(&op) | op.backend_stage, 0);
    io_uring_sqe_set_data(sqe, nullptr);  // the cancel's own CQE is ignored
    if (skip_cancel_cqes_) sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  }

  void prepare(operation& op) {
    // Without a buffer ring, receive() waits for readiness and reads itself.
    if (op.runtime_buffer && !buffer_ring_) {
      prepare_poll(op);
      return;
    }
    io_uring_sqe* sqe = next_sqe();
    switch (op.code) {
      case op_code::accept:
        io_uring_prep_accept(sqe, op.fd, op.addr, op.addr ? &op.addr_len : nullptr,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
        break;
      case op_code::recv:
        if (op.runtime_buffer) {
          prepare_receive(sqe, op);
        } else {
          io_uring_prep_recv(sqe, op.fd, rest(op), rest_size(op), op.flags);
        }
        break;
      case op_code::send:
        io_uring_prep_send(sqe, op.fd, rest(op), rest_size(op), op.flags | MSG_NOSIGNAL);
        break;
      case op_code::connect:
        io_uring_prep_connect(sqe, op.fd, op.addr, op.addr_len);
        break;
      case op_code::recvmsg:
        io_uring_prep_recvmsg(sqe, op.fd, op.msg, static_cast<unsigned>(op.flags));
        break;
      case op_code::sendmsg:
        io_uring_prep_sendmsg(sqe, op.fd, op.msg, static_cast<unsigned>(op.flags | MSG_NOSIGNAL));
        break;
      case op_code::poll:
        io_uring_prep_poll_add(sqe, op.fd, static_cast<unsigned>(op.poll_events));
        break;
      case op_code::sendfile:
        prepare_splice(sqe, op);
        break;
      case op_code::wait:
        io_uring_prep_nop(sqe);  // not reached: the loop never submits waits here
        break;
    }
    op.backend_stage = 0;
    io_uring_sqe_set_data(sqe, &op);
  }

  // What is left of a recv or send buffer, at most one request's worth.
  static char* rest(operation& op) { return static_cast<char*>(op.data) + op.done; }
  static std::size_t rest_size(const operation& op) { return std::min(op.size - op.done, max_request_bytes); }

  // The kernel picks a chunk from the provided buffer ring only when data
  // arrives, so a recv waiting on an idle connection holds no memory.
  void setup_buffer_ring() {
    buffer_ring_entries_ = max_buffer_ring_entries;
    while (buffer_ring_entries_ > loop_.buffers.limit()) buffer_ring_entries_ /= 2;
    lend_target_ = std::min(initial_lend_target, buffer_ring_entries_);
    const std::size_t bytes = buffer_ring_entries_ * sizeof(io_uring_buf);
    void* memory = nullptr;
    if (::posix_memalign(&memory, 4096, bytes) != 0) return;
    std::memset(memory, 0, bytes);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uintptr_t>(memory);
    reg.ring_entries = buffer_ring_entries_;
    reg.bgid = buffer_group;
    // Kernels before 5.19 have no buffer rings: receive() then polls and reads.
    if (io_uring_register_buf_ring(&ring_, &reg, 0) != 0) {
      std::free(memory);
      return;
    }
    buffer_ring_ = static_cast<io_uring_buf_ring*>(memory);
    io_uring_buf_ring_init(buffer_ring_);
    refill_buffer_ring();
  }

  // Keeps lend_target_ chunks in the ring, from the pool: chunks the kernel filled go to the
  // program, which gives them back to the pool, so the pool's limit bounds
  // receive memory here as on the readiness backends.
  void refill_buffer_ring() {
    if (!buffer_ring_) return;
    unsigned added = 0;
    while (in_ring_ + added < lend_target_ && loop_.buffers.can_lend()) {
      const std::uint16_t id = loop_.buffers.acquire();
      io_uring_buf_ring_add(buffer_ring_, loop_.buffers.data(id), buffer_pool::chunk_size, id,
                            io_uring_buf_ring_mask(buffer_ring_entries_), static_cast<int>(added));
      ++added;
    }
    if (added == 0) return;
    io_uring_buf_ring_advance(buffer_ring_, static_cast<int>(added));
    in_ring_ += added;
  }

  // Starved receives go back to the kernel once there are buffers for them:
  // as many as the ring holds (each may take one), or, without a ring, all
  // of them once the pool can lend again.
  void feed_starved() {
    std::size_t room = buffer_ring_ ? in_ring_ : loop_.buffers.can_lend() ? SIZE_MAX : 0;
    for (; room > 0; --room) {
      operation* op = starved_.pop();
      if (!op) return;
      submit(*op);
    }
  }

  // The ring was empty (-ENOBUFS), or without a ring the pool: the receive
  // leaves the kernel and the fd's list until buffers come back.
  void starve(operation& op) {
    in_flight_by_fd_[op.fd].remove(op);
    starved_.add(op);
  }

  void prepare_receive(io_uring_sqe* sqe, operation& op) {
    io_uring_prep_recv(sqe, op.fd, nullptr, buffer_pool::chunk_size, op.flags);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = buffer_group;
  }

  // A CQE that used a chunk: the operation keeps it when bytes came.
  void take_buffer(operation& op, int res, unsigned id) {
    --in_ring_;
    if (res > 0) {
      op.buffer_id = static_cast<std::uint16_t>(id);
    } else {
      loop_.buffers.release(static_cast<std::uint16_t>(id));
    }
  }

  void receive_after_poll(operation& op) {
    const int res = attempt(op);
    if (res == -EAGAIN) {
      prepare_poll(op);
    } else if (res == -ENOBUFS) {
      starve(op);
    } else {
      complete(op, res);
    }
  }

  // io_uring has no sendfile: the bytes go file -> pipe -> socket, one splice
  // at a time (each runs in io-wq, where the blocking file read is fine).
  void prepare_splice(io_uring_sqe* sqe, operation& op) {
    if (op.pipe_fds[0] < 0) take_pipe(op);
    if (op.in_pipe == 0) {
      const std::size_t chunk = std::min(op.size - op.done, pipe_capacity_);
      io_uring_prep_splice(sqe, op.source_fd, op.offset, op.pipe_fds[1], -1,
                           static_cast<unsigned>(chunk), SPLICE_F_MOVE);
    } else {
      io_uring_prep_splice(sqe, op.pipe_fds[0], -1, op.fd, -1, static_cast<unsigned>(op.in_pipe),
                           SPLICE_F_MOVE);
    }
  }

  void take_pipe(operation& op) {
    if (!spare_pipes_.empty()) {
      std::tie(op.pipe_fds[0], op.pipe_fds[1]) = spare_pipes_.back();
      spare_pipes_.pop_back();
      return;
    }
    if (::pipe2(op.pipe_fds, O_CLOEXEC) != 0) return;  // the splice then fails with EBADF
    // A larger pipe means fewer splices per file (1 MiB is the default maximum).
    const int size = ::fcntl(op.pipe_fds[1], F_SETPIPE_SZ, 1 << 20);
    if (size > 0) pipe_capacity_ = std::max(pipe_capacity_, static_cast<std::size_t>(size));
  }

  // A pipe that may still hold bytes (a cancelled transfer) is closed, not reused.
  void release_pipe(operation& op) {
    if (op.pipe_fds[0] < 0) return;
    if (op.in_pipe == 0 && !op.cancel_errno && spare_pipes_.size() < 16) {
      spare_pipes_.emplace_back(op.pipe_fds[0], op.pipe_fds[1]);
    } else {
      ::close(op.pipe_fds[0]);
      ::close(op.pipe_fds[1]);
    }
    op.pipe_fds[0] = op.pipe_fds[1] = -1;
  }

  // Counts what one finished splice moved: into the pipe, or on to the socket.
  static void count_splice(operation& op, int res) {
    if (op.in_pipe == 0) {
      op.offset += res;
      op.in_pipe = static_cast<std::size_t>(res);
    } else {
      op.in_pipe -= static_cast<std::size_t>(res);
      op.done += static_cast<std::size_t>(res);
    }
  }

  // One splice of a sendfile finished: the next one, or the end.
  void finish_splice(operation& op, int res) {
    if (res < 0) {
      complete(op, res);
    } else if (res == 0 && op.in_pipe == 0) {
      complete(op, 0);  // the file ended early: op.done says how far it got
    } else {
      count_splice(op, res);
      if (op.done == op.size && op.in_pipe == 0) {
        complete(op, 0);
      } else {
        prepare(op);
      }
    }
  }

  // Waits for the readiness `op` needs before its SQE is tried again.
  void prepare_poll(operation& op) {
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_poll_add(sqe, op.fd, op.wants() == direction::read ? POLLIN : POLLOUT);
    op.backend_stage = poll_stage;
    io_uring_sqe_set_data64(sqe, reinterpret_cast<std::uintptr_t>(&op) | poll_stage);
  }

  // Moves the CQEs out of the CQ, freeing their slots, to be handled by reap().
  void take_completions() {
    unsigned head;
    unsigned count = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      taken_.push_back({cqe->user_data, cqe->res, cqe->flags});
      ++count;
    }
    io_uring_cq_advance(&ring_, count);
  }

  // Handles every completion there is. Handling may submit again, and on a
  // full SQ take more completions: those wait for the next round here.
  void reap() {
    for (;;) {
      take_completions();
      if (taken_.empty()) return;
      handling_.swap(taken_);
      // Loaded once per batch; trace_cqe checks again, as the limit may stop
      // the tracer in the middle of the batch.
      detail::tracer* const traced = loop_.trace;
      if (traced) traced->wait_returned(static_cast<int>(handling_.size()));
      for (const completion& c : handling_) {
        if (c.tag == 0) continue;  // a cancel's own answer
        auto& op = *reinterpret_cast<operation*>(c.tag & ~std::uint64_t{poll_stage});
        if (traced) trace_cqe(op, (c.tag & poll_stage) != 0, c.res);
        if (c.flags & IORING_CQE_F_BUFFER) take_buffer(op, c.res, c.flags >> IORING_CQE_BUFFER_SHIFT);
        finish(op, (c.tag & poll_stage) != 0, c.res);
      }
      handling_.clear();
    }
  }

  void trace_cqe(const operation& op, bool from_poll, int res) {
    static constexpr const char* names[] = {"accept", "recv",    "send",     "connect", "recvmsg",
                                            "sendmsg", "poll_add", "splice", "wait"};
    if (!loop_.trace) return;
    const char* name = from_poll ? "poll_add" : names[static_cast<int>(op.code)];
    loop_.trace->set_cause("CQE res={} for {} fd {}", res, name, op.fd);
  }

  // Ops in flight per fd, so that forget() can find them.
  void track(operation& op) {
    if (static_cast<std::size_t>(op.fd) >= in_flight_by_fd_.size()) in_flight_by_fd_.resize(op.fd + 1024);
    in_flight_by_fd_[op.fd].push_back(op);
  }

  void complete(operation& op, int res) {
    if (op.code == op_code::sendfile) release_pipe(op);
    in_flight_by_fd_[op.fd].remove(op);
    loop_.complete(op, res);
  }

  // Cancellation was asked for: this CQE is the operation's answer. What
  // it finished first stands, and the bytes a transfer moved stay counted;
  // a poll stage, a retry or an unfinished transfer is not resumed.
  void finish_cancelled(operation& op, bool from_poll, int res) {
    const bool would_retry = res == -EAGAIN || res == -ENOBUFS || res == -EINPROGRESS || res == -EALREADY;
    if (from_poll || would_retry) {
      complete(op, -ECANCELED);
    } else if (!op.transfer_all || res <= 0) {
      complete(op, op.code == op_code::connect && res == -EISCONN && op.connect_started ? 0 : res);
    } else {
      if (op.code == op_code::sendfile) {
        count_splice(op, res);
      } else {
        op.done += static_cast<std::size_t>(res);
      }
      complete(op, op.done == op.size && op.in_pipe == 0 ? 0 : -ECANCELED);
    }
  }

  void finish(operation& op, bool from_poll, int res) {
    if (op.cancel_errno) {
      finish_cancelled(op, from_poll, res);
      return;
    }
    if (from_poll) {
      if (res < 0) {
        complete(op, res);
      } else if (op.runtime_buffer && !buffer_ring_) {
        receive_after_poll(op);
      } else {
        prepare(op);
      }
      return;
    }
    if (res == -ENOBUFS && op.runtime_buffer) {
      lend_target_ = std::min(2 * lend_target_, buffer_ring_entries_);
      starve(op);
      return;
    }
    // Sockets are non-blocking for the readiness backends' sake; an SQE on
    // one may answer -EAGAIN instead of waiting, so wait for readiness first.
    if (res == -EAGAIN && op.code != op_code::poll) {
      prepare_poll(op);
      return;
    }
    // A connect that answered "in progress" is asked again once writable;
    // then EISCONN means it succeeded.
    if (op.code == op_code::connect) {
      if (res == -EINPROGRESS || res == -EALREADY) {
        op.connect_started = true;
        prepare_poll(op);
        return;
      }
      if (res == -EISCONN && op.connect_started) res = 0;
    }
    if (op.code == op_code::sendfile) {
      finish_splice(op, res);
      return;
    }
    if (op.transfer_all && res > 0) {
      op.done += static_cast<std::size_t>(res);
      if (op.done < op.size) {
        prepare(op);
        return;
      }
      res = 0;  // whole: op.done is the count
    }
    complete(op, res);
  }

  loop_state& loop_;
  io_uring ring_{};
  unsigned flags_ = 0;
  bool skip_cancel_cqes_ = false;
  bool ring_fd_registered_ = false;
  std::vector<waiter_list> in_flight_by_fd_;
  starved_receives starved_;
  std::vector<completion> taken_;     // out of the CQ, not handled yet
  std::vector<completion> handling_;  // being handled by reap()
  std::vector<std::pair<int, int>> spare_pipes_;
  std::size_t pipe_capacity_ = 64 * 1024;
  io_uring_buf_ring* buffer_ring_ = nullptr;
  unsigned buffer_ring_entries_ = 0;
  unsigned lend_target_ = 0;  // chunks to keep in the ring, at most its entries
  unsigned in_ring_ = 0;  // chunks lent to the kernel and not yet used
};

}  // namespace

std::unique_ptr<backend> make_uring_backend(loop_state& loop) {
  return std::make_unique<uring_backend>(loop);
}

}  // namespace switchboard::detail

#else  // built without liburing: the backend is refused, and not blamed on the kernel

namespace switchboard::detail {
std::unique_ptr<backend> make_uring_backend(loop_state&) {
  throw backend_unavailable(backend_kind::uring, std::make_error_code(std::errc::not_supported),
                            "switchboard was built without liburing");
}
}  // namespace switchboard::detail

#endif
