// The non-blocking system call behind each operation, shared by the
// readiness backends (select, epoll): they call it speculatively first and
// again whenever the fd is reported ready.
#include <cerrno>

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/sendfile.h>
#include <sys/socket.h>

#include "backend.hpp"

namespace switchboard::detail {
namespace {

bool would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

// Runs `call(done, remaining)` until it moved everything (transfer_all),
// moved something (otherwise), hit EOF, failed, or would block. A transfer_all
// counts in op.done (64 bits: it may pass 4 GiB) and answers 0 when it ends.
template <class Call>
int transfer(operation& op, Call call) {
  for (;;) {
    const ssize_t n = call(op.done, op.size - op.done);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (would_block(errno)) return -EAGAIN;
      return -errno;
    }
    // One call moves at most MAX_RW_COUNT (just under 2 GiB): n fits an int.
    if (!op.transfer_all) return static_cast<int>(n);
    op.done += static_cast<std::size_t>(n);
    if (n == 0 || op.done == op.size) return 0;
  }
}

// sendfile(2) has no MSG_NOSIGNAL: into a socket whose peer has gone it
// raises SIGPIPE, which kills a program with the default disposition, even
// when it returns the bytes it moved before the peer's reset. So SIGPIPE is
// blocked around the call, and a SIGPIPE this call raised (it is sent to
// this thread) is taken back before the mask is restored. One that was
// pending before, in a program that blocks SIGPIPE itself, is left alone.
// A call that moved all it was asked to met no reset and raised nothing.
ssize_t sendfile_without_sigpipe(int socket_fd, int file_fd, off_t* offset, std::size_t count) {
  sigset_t sigpipe_only;
  ::sigemptyset(&sigpipe_only);
  ::sigaddset(&sigpipe_only, SIGPIPE);
  sigset_t old;
  ::pthread_sigmask(SIG_BLOCK, &sigpipe_only, &old);
  const bool blocked_before = ::sigismember(&old, SIGPIPE);
  bool pending_before = false;
  if (blocked_before) {
    sigset_t pending;
    ::sigpending(&pending);
    pending_before = ::sigismember(&pending, SIGPIPE);
  }
  const ssize_t sent = ::sendfile(socket_fd, file_fd, offset, count);
  const int err = errno;
  const bool may_have_raised = sent < 0 ? err == EPIPE : static_cast<std::size_t>(sent) < count;
  if (may_have_raised && !pending_before) {
    const timespec now{};
    while (::sigtimedwait(&sigpipe_only, nullptr, &now) < 0 && errno == EINTR) {
    }
  }
  if (!blocked_before) ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = err;
  return sent;
}

// connect() on a non-blocking socket answers EINPROGRESS; asking again once
// the socket is writable answers EISCONN on success, EALREADY while still
// connecting, or the failure (ECONNREFUSED...). Unlike reading SO_ERROR,
// this cannot mistake a spurious wake-up for success.
int attempt_connect(operation& op) {
  for (;;) {
    if (::connect(op.fd, op.addr, op.addr_len) == 0) return 0;
    const int err = errno;
    if (err == EINTR) continue;
    if (err == EISCONN && op.connect_started) return 0;
    if (err == EINPROGRESS || err == EALREADY || would_block(err)) {
      op.connect_started = true;
      return -EAGAIN;
    }
    return -err;
  }
}

// Borrows a chunk only for the syscall and keeps it only when bytes came.
int receive_into_pool(operation& op, buffer_pool& pool) {
  const std::uint16_t id = pool.acquire();
  if (id == buffer_pool::no_chunk) return -ENOBUFS;
  for (;;) {
    const ssize_t n = ::recv(op.fd, pool.data(id), buffer_pool::chunk_size, op.flags);
    if (n > 0) {
      op.buffer_id = id;
      return static_cast<int>(n);
    }
    if (n < 0 && errno == EINTR) continue;
    pool.release(id);
    if (n == 0) return 0;
    return would_block(errno) ? -EAGAIN : -errno;
  }
}

// The calls other than recv and send, kept out of attempt() so that the
// common ones pay for none of their registers and state.
[[gnu::noinline]] int attempt_rarer(operation& op) noexcept {
  switch (op.code) {
    case op_code::accept:
      for (;;) {
        const int fd = ::accept4(op.fd, op.addr, op.addr ? &op.addr_len : nullptr,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) return fd;
        if (errno == EINTR) continue;
        return would_block(errno) ? -EAGAIN : -errno;
      }
    case op_code::connect:
      return attempt_connect(op);
    case op_code::recvmsg:
    case op_code::sendmsg:
      for (;;) {
        const ssize_t n = op.code == op_code::recvmsg
                              ? ::recvmsg(op.fd, op.msg, op.flags)
                              : ::sendmsg(op.fd, op.msg, op.flags | MSG_NOSIGNAL);
        if (n >= 0) return static_cast<int>(n);
        if (errno == EINTR) continue;
        return would_block(errno) ? -EAGAIN : -errno;
      }
    case op_code::poll: {
      pollfd pfd{op.fd, op.poll_events, 0};
      for (;;) {
        const int n = ::poll(&pfd, 1, 0);
        if (n > 0) return pfd.revents;
        if (n == 0) return -EAGAIN;
        if (errno != EINTR) return -errno;
      }
    }
    case op_code::sendfile:
      return transfer(op, [&](std::size_t, std::size_t n) {
        off_t offset = static_cast<off_t>(op.offset);
        const ssize_t sent = sendfile_without_sigpipe(op.fd, op.source_fd, &offset, n);
        if (sent > 0) op.offset = offset;
        return sent;
      });
    case op_code::recv:
    case op_code::send:
    case op_code::wait:
      break;
  }
  return -EINVAL;
}

}  // namespace

int attempt(operation& op, buffer_pool& buffers) noexcept {
  switch (op.code) {
    case op_code::recv:
      if (op.runtime_buffer) return receive_into_pool(op, buffers);
      return transfer(op, [&](std::size_t done, std::size_t n) {
        return ::recv(op.fd, static_cast<char*>(op.data) + done, n, op.flags);
      });
    case op_code::send:
      return transfer(op, [&](std::size_t done, std::size_t n) {
        return ::send(op.fd, static_cast<char*>(op.data) + done, n, op.flags | MSG_NOSIGNAL);
      });
    default:
      return attempt_rarer(op);
  }
}

}  // namespace switchboard::detail
