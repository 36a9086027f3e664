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
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <fmt/core.h>

#include "backend.hpp"

#if SWITCHBOARD_HAVE_URING
#include <liburing.h>

namespace switchboard::detail {
namespace {

constexpr unsigned submission_entries = 4096;
constexpr unsigned completion_entries = 4 * submission_entries;

// The provided buffer ring for receive(): 1024 chunks of 16 KiB (16 MiB of
// address space; pages become resident only once the kernel writes them).
constexpr std::uint16_t buffer_ring_entries = 1024;
constexpr std::uint16_t buffer_group = 0;

// Low bit of user_data: the CQE belongs to a poll_add that an operation
// waits on after its own SQE answered -EAGAIN (operations are aligned, so
// the bit is free).
constexpr std::uintptr_t poll_stage = 1;

class uring_backend final : public backend {
 public:
  explicit uring_backend(loop_state& loop) : loop_(loop) {
    io_uring_params params{};
    params.cq_entries = completion_entries;
    const unsigned optional_flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    // Newest flags first; older kernels reject unknown setup flags with EINVAL.
    for (unsigned flags : {IORING_SETUP_CQSIZE | optional_flags, unsigned{IORING_SETUP_CQSIZE}, 0u}) {
      params = io_uring_params{};
      params.flags = flags;
      params.cq_entries = completion_entries;
      const int res = io_uring_queue_init_params(submission_entries, &ring_, &params);
      if (res == 0) {
        flags_ = flags;
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

  int try_now(operation&) override { return -EAGAIN; }

  void submit(operation& op) override {
    track(op);
    prepare(op);
  }

  void cancel(operation& op) override {
    io_uring_sqe* sqe = next_sqe();
    const std::uintptr_t target = reinterpret_cast<std::uintptr_t>(&op) | op.backend_stage;
    io_uring_prep_cancel64(sqe, target, 0);
    io_uring_sqe_set_data(sqe, nullptr);  // the cancel's own CQE is ignored
  }

  void wait(std::optional<std::chrono::nanoseconds> timeout) override {
    recycle_buffers();
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
    if (static_cast<std::size_t>(fd) >= in_flight_by_fd_.size()) return;
    for (operation* op = in_flight_by_fd_[fd]; op; op = op->next_waiter) {
      if (op->cancel_errno) continue;
      op->cancel_errno = EBADF;
      cancel(*op);
    }
  }

  std::string describe() const override {
    std::string flags;
    if (flags_ & IORING_SETUP_SINGLE_ISSUER) flags += " SINGLE_ISSUER";
    if (flags_ & IORING_SETUP_DEFER_TASKRUN) flags += " DEFER_TASKRUN";
    return fmt::format("io_uring, sq {} cq {}, flags{}", ring_.sq.ring_entries,
                       ring_.cq.ring_entries, flags.empty() ? " none" : flags);
  }

 private:
  [[noreturn]] static void fail(int err) {
    throw backend_unavailable(backend_kind::uring, std::error_code(err, std::generic_category()),
                              "io_uring_setup failed");
  }

  io_uring_sqe* next_sqe() {
    for (;;) {
      if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) return sqe;
      // The SQ is full: hand it to the kernel now and take a fresh slot.
      const int res = io_uring_submit(&ring_);
      if (res == -EBUSY) reap();
    }
  }

  void prepare(operation& op) {
    // Without a buffer ring, receive() waits for readiness and reads itself.
    if (op.runtime_buffer && !buffer_ring_) {
      prepare_poll(op);
      return;
    }
    io_uring_sqe* sqe = next_sqe();
    char* data = static_cast<char*>(op.data);
    switch (op.code) {
      case op_code::accept:
        io_uring_prep_accept(sqe, op.fd, op.addr, op.addr ? &op.addr_len : nullptr,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
        break;
      case op_code::recv:
        if (op.runtime_buffer) {
          prepare_receive(sqe, op);
        } else {
          io_uring_prep_recv(sqe, op.fd, data + op.done, op.size - op.done, op.flags);
        }
        break;
      case op_code::send:
        io_uring_prep_send(sqe, op.fd, data + op.done, op.size - op.done, op.flags | MSG_NOSIGNAL);
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

  // The kernel picks a chunk from the provided buffer ring only when data
  // arrives, so a recv waiting on an idle connection holds no memory.
  void setup_buffer_ring() {
    const std::size_t bytes = buffer_ring_entries * sizeof(io_uring_buf);
    void* memory = nullptr;
    if (::posix_memalign(&memory, 4096, bytes) != 0) return;
    std::memset(memory, 0, bytes);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uintptr_t>(memory);
    reg.ring_entries = buffer_ring_entries;
    reg.bgid = buffer_group;
    // Kernels before 5.19 have no buffer rings: receive() then polls and reads.
    if (io_uring_register_buf_ring(&ring_, &reg, 0) != 0) {
      std::free(memory);
      return;
    }
    buffer_ring_ = static_cast<io_uring_buf_ring*>(memory);
    io_uring_buf_ring_init(buffer_ring_);
    std::uint16_t given = 0;
    for (; given < buffer_ring_entries && loop_.buffers.can_lend(); ++given) {
      give_to_kernel(loop_.buffers.acquire(), given);
    }
    io_uring_buf_ring_advance(buffer_ring_, given);
  }

  void give_to_kernel(std::uint16_t id, unsigned offset) {
    io_uring_buf_ring_add(buffer_ring_, loop_.buffers.data(id), buffer_pool::chunk_size, id,
                          io_uring_buf_ring_mask(buffer_ring_entries), static_cast<int>(offset));
  }

  // Chunks the program released go back into the ring; operations that found
  // it empty are tried again.
  void recycle_buffers() {
    if (!buffer_ring_) return;
    std::vector<std::uint16_t>& released = loop_.buffers.released();
    if (released.empty()) return;
    unsigned offset = 0;
    for (std::uint16_t id : released) give_to_kernel(id, offset++);
    io_uring_buf_ring_advance(buffer_ring_, static_cast<int>(offset));
    released.clear();
    std::vector<operation*> retry;
    retry.swap(starved_);
    for (operation* op : retry) prepare(*op);
  }

  void prepare_receive(io_uring_sqe* sqe, operation& op) {
    io_uring_prep_recv(sqe, op.fd, nullptr, buffer_pool::chunk_size, op.flags);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = buffer_group;
  }

  // A CQE that used a chunk: the operation keeps it when bytes came.
  void take_buffer(operation& op, int res, unsigned id) {
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

  // One splice of a sendfile finished: the next one, or the end.
  void finish_splice(operation& op, int res) {
    const bool into_pipe = op.in_pipe == 0;
    if (res < 0) {
      complete(op, res);
    } else if (into_pipe && res == 0) {
      complete(op, static_cast<int>(op.done));  // the file ended early
    } else if (into_pipe) {
      op.offset += res;
      op.in_pipe = static_cast<std::size_t>(res);
      prepare(op);
    } else {
      op.in_pipe -= static_cast<std::size_t>(res);
      op.done += static_cast<std::size_t>(res);
      if (op.done == op.size && op.in_pipe == 0) {
        complete(op, static_cast<int>(op.done));
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

  // Copies CQEs out in batches and frees their slots before handling them,
  // so that handling may submit (and, on a full SQ, reap) again safely.
  void reap() {
    struct completion {
      std::uint64_t tag;
      int res;
      unsigned flags;
    };
    std::array<completion, 256> batch;
    for (;;) {
      unsigned head;
      unsigned count = 0;
      io_uring_cqe* cqe;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        batch[count++] = {cqe->user_data, cqe->res, cqe->flags};
        if (count == batch.size()) break;
      }
      if (count == 0) return;
      io_uring_cq_advance(&ring_, count);
      for (unsigned i = 0; i < count; ++i) {
        const std::uint64_t tag = batch[i].tag;
        if (tag == 0) continue;
        auto& op = *reinterpret_cast<operation*>(tag & ~std::uint64_t{poll_stage});
        if (batch[i].flags & IORING_CQE_F_BUFFER) {
          take_buffer(op, batch[i].res, batch[i].flags >> IORING_CQE_BUFFER_SHIFT);
        }
        finish(op, (tag & poll_stage) != 0, batch[i].res);
      }
    }
  }

  // Ops in flight per fd, so that forget() can find them.
  void track(operation& op) {
    if (static_cast<std::size_t>(op.fd) >= in_flight_by_fd_.size()) {
      in_flight_by_fd_.resize(op.fd + 1024, nullptr);
    }
    op.next_waiter = in_flight_by_fd_[op.fd];
    in_flight_by_fd_[op.fd] = &op;
  }

  void complete(operation& op, int res) {
    if (op.code == op_code::sendfile) release_pipe(op);
    operation** link = &in_flight_by_fd_[op.fd];
    while (*link != &op) link = &(*link)->next_waiter;
    *link = op.next_waiter;
    op.next_waiter = nullptr;
    loop_.complete(op, res);
  }

  void finish(operation& op, bool from_poll, int res) {
    if (op.cancel_errno) {
      // Cancellation was asked for: the op's own CQE is its answer, and a
      // poll stage or partial transfer is not resumed.
      complete(op, from_poll || (op.transfer_all && res > 0) ? -ECANCELED : res);
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
      starved_.push_back(&op);  // the ring ran dry: again once chunks come back
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
      res = static_cast<int>(op.done);
    } else if (op.transfer_all && res == 0) {
      res = static_cast<int>(op.done);
    }
    complete(op, res);
  }

  loop_state& loop_;
  io_uring ring_{};
  unsigned flags_ = 0;
  std::vector<operation*> in_flight_by_fd_;
  std::vector<std::pair<int, int>> spare_pipes_;
  io_uring_buf_ring* buffer_ring_ = nullptr;
  std::vector<operation*> starved_;
  std::size_t pipe_capacity_ = 64 * 1024;
};

}  // namespace

std::unique_ptr<backend> make_uring_backend(loop_state& loop) {
  return std::make_unique<uring_backend>(loop);
}

}  // namespace switchboard::detail

#else  // built without liburing: the backend is refused like a kernel without io_uring

namespace switchboard::detail {
std::unique_ptr<backend> make_uring_backend(loop_state&) {
  throw backend_unavailable(backend_kind::uring, std::error_code(ENOSYS, std::generic_category()),
                            "switchboard was built without liburing");
}
}  // namespace switchboard::detail

#endif
