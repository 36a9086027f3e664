// Sockets as services see them: endpoints, listeners, byte streams and
// datagram sockets over TCP (IPv4, IPv6), Unix-domain paths and UDP.
//
//   auto server = listener::bind(*endpoint::ip("127.0.0.1", 7007)).value();
//   for (;;) {
//     auto conn = co_await server.accept();               // result<stream>
//     auto n = co_await conn->read_some(buf);             // result<size_t>, 0 at EOF
//     co_await conn->write_all(std::span(buf).first(*n)); // result<size_t>
//   }
//
// Every awaitable here is an operation: starting it allocates nothing, it
// accepts a deadline (with_timeout in time.hpp) and it honours cancellation.
// Descriptors are owned (RAII) and closed through the runtime, so a backend
// never sees a number that was closed and reused under it.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "switchboard/buffer.hpp"
#include "switchboard/detail/operation.hpp"
#include "switchboard/result.hpp"
#include "switchboard/task.hpp"

namespace switchboard {

// An IPv4, IPv6 or Unix-domain address. Prints as 127.0.0.1:7007,
// [::1]:7007, unix:/tmp/x.sock, or "unix" for an unnamed Unix peer.
class endpoint {
 public:
  endpoint() noexcept;

  // A numeric host ("127.0.0.1", "::1" or "[::1]") and a port; nullopt when
  // `host` is not a numeric address.
  static std::optional<endpoint> ip(std::string_view host, std::uint16_t port);
  // A Unix-domain path; filename_too_long past sun_path's 107 bytes.
  static result<endpoint> unix_path(std::string_view path);
  static endpoint from_native(const sockaddr* addr, socklen_t size) noexcept;

  int family() const noexcept { return storage_.ss_family; }
  bool is_unix() const noexcept { return family() == AF_UNIX; }
  // The port, 0 for Unix-domain endpoints.
  std::uint16_t port() const noexcept;
  // The same address with another port (unchanged for Unix-domain endpoints).
  endpoint with_port(std::uint16_t port) const noexcept;
  // The Unix-domain path ("" for an unnamed socket or an IP endpoint).
  std::string path() const;
  std::string to_string() const;

  const sockaddr* native() const noexcept { return reinterpret_cast<const sockaddr*>(&storage_); }
  sockaddr* native() noexcept { return reinterpret_cast<sockaddr*>(&storage_); }
  socklen_t native_size() const noexcept { return size_; }

  friend bool operator==(const endpoint& a, const endpoint& b) noexcept;

 private:
  sockaddr_storage storage_{};
  socklen_t size_ = 0;
};

// Every address `host` (a name or a numeric address) has for `port`, in the
// resolver's order. Names go through getaddrinfo, which blocks: use numeric
// hosts or "localhost" on a busy loop.
result<std::vector<endpoint>> resolve(const std::string& host, std::uint16_t port);

// An owned file descriptor, closed through the runtime (which first drops
// what its backend remembers about the number). A descriptor an operation
// waits on must be closed this way: a raw ::close() of such a number is not
// supported (select fails the operation, epoll and io_uring may never end it).
class unique_fd {
 public:
  unique_fd() noexcept = default;
  // Owns `fd`, a number just obtained (socket, accept, open...). Whatever the
  // backend still kept for that number belonged to a file closed behind the
  // runtime's back: operations left waiting on it end with bad_file_descriptor,
  // and the new file is watched afresh.
  explicit unique_fd(int fd) noexcept : fd_(fd) { adopt(); }
  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  ~unique_fd() { reset(); }

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  int release() noexcept { return std::exchange(fd_, -1); }
  // Closes the descriptor it owns, then owns `fd` (as the constructor does).
  void reset(int fd = -1) noexcept;

 private:
  void adopt() noexcept;
  int fd_ = -1;
};

namespace detail {

// recv/send on a stream: bytes moved (0 at EOF), or the error.
struct transfer_operation : awaitable_operation<transfer_operation> {
  result<std::size_t> await_resume() const noexcept {
    if (res < 0) return errno_code(-res);
    return transferred();
  }
  // The bytes moved, also when the operation failed or was cancelled part of
  // the way (write_all, read_exact, send_file): keep the operation in a
  // variable, co_await it, then ask.
  std::size_t transferred() const noexcept {
    if (transfer_all) return done;
    return res > 0 ? static_cast<std::size_t>(res) : 0;
  }
};

// recv into a runtime-owned chunk: the bytes (empty at EOF), or the error.
struct receive_operation : awaitable_operation<receive_operation> {
  result<buffer> await_resume() noexcept;
};

// Readiness: the poll(2) revents, or the error.
struct poll_operation : awaitable_operation<poll_operation> {
  result<short> await_resume() const noexcept { return from_syscall<short>(res); }
};

template <class Bytes>
transfer_operation make_transfer(op_code code, int fd, Bytes bytes, bool all) noexcept {
  transfer_operation op;
  op.code = code;
  op.fd = fd;
  op.data = const_cast<void*>(static_cast<const void*>(bytes.data()));
  op.size = bytes.size_bytes();
  op.transfer_all = all;
  return op;
}

}  // namespace detail

// Waits until `fd` (any pollable descriptor: a socket, a pipe, a FIFO, stdin,
// a signalfd; regular files are always ready) is ready for `events` (POLLIN,
// POLLOUT); returns the poll(2) revents. `fd` must stay open until the wait
// ends: closing it meanwhile without the runtime (not through unique_fd) is
// not supported — select fails the wait with bad_file_descriptor, epoll and
// io_uring may wait until the number is reused.
// An fd of -1 (as in a default, closed or moved-from stream) fails every
// operation at once with bad_file_descriptor.
inline detail::poll_operation wait_ready(int fd, short events) noexcept {
  detail::poll_operation op;
  op.code = detail::op_code::poll;
  op.fd = fd;
  op.poll_events = events;
  return op;
}

// A connected byte stream: TCP or Unix-domain.
class stream {
 public:
  stream() noexcept = default;
  stream(unique_fd fd, endpoint peer) noexcept : fd_(std::move(fd)), peer_(std::move(peer)) {}

  // Reads what is there (at least one byte): the count, or 0 at EOF. An
  // empty `buf` completes at once with 0, as recv(2) does: a caller that
  // takes 0 for EOF must not pass one.
  detail::transfer_operation read_some(std::span<std::byte> buf) noexcept {
    return detail::make_transfer(detail::op_code::recv, fd_.get(), buf, false);
  }
  detail::transfer_operation read_some(std::span<char> buf) noexcept {
    return detail::make_transfer(detail::op_code::recv, fd_.get(), buf, false);
  }
  // Reads what is there into a buffer the runtime lends only once data has
  // arrived (see buffer.hpp): an idle connection holds no buffer.
  detail::receive_operation receive() noexcept {
    detail::receive_operation op;
    op.code = detail::op_code::recv;
    op.fd = fd_.get();
    op.runtime_buffer = true;
    op.size = detail::buffer_pool::chunk_size;
    return op;
  }
  // Fills `buf`; fewer bytes only when EOF came first.
  detail::transfer_operation read_exact(std::span<std::byte> buf) noexcept {
    return detail::make_transfer(detail::op_code::recv, fd_.get(), buf, true);
  }
  detail::transfer_operation read_exact(std::span<char> buf) noexcept {
    return detail::make_transfer(detail::op_code::recv, fd_.get(), buf, true);
  }
  // Writes what the socket takes now (at least one byte).
  detail::transfer_operation write_some(std::span<const std::byte> bytes) noexcept {
    return detail::make_transfer(detail::op_code::send, fd_.get(), bytes, false);
  }
  // Writes all of `bytes`, finishing partial writes.
  detail::transfer_operation write_all(std::span<const std::byte> bytes) noexcept {
    return detail::make_transfer(detail::op_code::send, fd_.get(), bytes, true);
  }
  detail::transfer_operation write_all(std::string_view text) noexcept {
    return detail::make_transfer(detail::op_code::send, fd_.get(), std::span(text), true);
  }
  // Sends `count` bytes of the regular file `file_fd` from `offset` without
  // copying them through user space (sendfile; splice on io_uring): the
  // bytes sent, fewer only when the file ended first.
  detail::transfer_operation send_file(int file_fd, std::int64_t offset, std::size_t count) noexcept {
    detail::transfer_operation op;
    op.code = detail::op_code::sendfile;
    op.fd = fd_.get();
    op.source_fd = file_fd;
    op.offset = offset;
    op.size = count;
    op.transfer_all = true;
    return op;
  }

  // Waits until reading would not block (data, EOF or an error is there).
  detail::poll_operation wait_readable() noexcept { return wait_ready(fd_.get(), POLLIN); }

  // Sends FIN: the peer reads EOF, and this side can still read.
  result<void> shutdown_write() noexcept;
  // TCP_NODELAY: small writes go out at once instead of waiting for the
  // peer's ACK of earlier ones (Nagle). TCP only: the kernel refuses it on a
  // Unix stream.
  result<void> set_no_delay(bool on = true) noexcept;
  // SO_KEEPALIVE: the kernel probes an idle peer and fails the stream with
  // timed_out when it has gone (after about two hours by default).
  result<void> set_keep_alive(bool on = true) noexcept;
  // Closes now; a later close by the destructor does nothing.
  void close() noexcept { fd_.reset(); }

  const endpoint& peer() const noexcept { return peer_; }
  int native_handle() const noexcept { return fd_.get(); }
  explicit operator bool() const noexcept { return static_cast<bool>(fd_); }

 private:
  unique_fd fd_;
  endpoint peer_;
};

// A listening socket, TCP (SO_REUSEADDR) or Unix-domain.
class listener {
 public:
  listener() noexcept = default;
  listener(listener&&) noexcept;
  listener& operator=(listener&&) noexcept;
  // Closes the socket and removes the Unix-domain path it created.
  ~listener();

  // Binds and listens. A Unix path left behind by a dead server is replaced;
  // one that a live server answers on gives address_in_use.
  static result<listener> bind(const endpoint& where, int backlog = SOMAXCONN);
  // Takes over `fd`, a socket already bound and listening (passed on by a
  // service manager or a parent process): makes it non-blocking and close-on-exec;
  // never removes its Unix path. invalid_argument when it is not a listening
  // stream socket.
  static result<listener> adopt(unique_fd fd);

  struct accept_operation : detail::awaitable_operation<accept_operation> {
    sockaddr_storage peer{};
    void prepare() noexcept {
      addr = reinterpret_cast<sockaddr*>(&peer);
      addr_len = sizeof peer;
    }
    result<stream> await_resume() noexcept;
  };
  // The next connection, with its peer address.
  accept_operation accept() noexcept;

  // The next connection already waiting in the backlog, without waiting for
  // one: std::errc::operation_would_block when there is none. How a stopping
  // server takes what the kernel has queued before closing, which would
  // reset it.
  result<stream> try_accept() noexcept;

  // Accepts and at once closes every connection waiting in the backlog,
  // without blocking: how a server out of descriptors turns callers away
  // cleanly instead of leaving them hanging. Returns how many it shed.
  std::size_t shed_backlog() noexcept;

  // Where it listens, with the real port after binding port 0.
  const endpoint& local() const noexcept { return local_; }
  int native_handle() const noexcept { return fd_.get(); }
  // Stops listening now (and removes a Unix path).
  void close() noexcept;

 private:
  unique_fd fd_;
  endpoint local_;
  bool owns_path_ = false;
};

// A UDP socket.
class datagram_socket {
 public:
  datagram_socket() noexcept = default;
  // Bound to `where` (port 0: any free port).
  static result<datagram_socket> bind(const endpoint& where);
  // Takes over `fd`, a datagram socket already bound (passed on by a service
  // manager or a parent process): makes it non-blocking and close-on-exec.
  // invalid_argument when it is not a datagram socket.
  static result<datagram_socket> adopt(unique_fd fd);
  // Unbound, for a client: the kernel picks the port at the first send.
  static result<datagram_socket> open(int family);

  struct datagram {
    std::size_t size;  // bytes stored in the buffer
    endpoint from;
    bool truncated;    // the datagram was larger than the buffer
  };

  struct receive_operation : detail::awaitable_operation<receive_operation> {
    msghdr header{};
    iovec vec{};
    sockaddr_storage from{};
    void prepare() noexcept {
      header.msg_name = &from;
      header.msg_namelen = sizeof from;
      header.msg_iov = &vec;
      header.msg_iovlen = 1;
      msg = &header;
    }
    result<datagram> await_resume() const noexcept;
  };
  struct send_operation : detail::awaitable_operation<send_operation> {
    msghdr header{};
    iovec vec{};
    endpoint to;
    void prepare() noexcept {
      header.msg_name = to.native();
      header.msg_namelen = to.native_size();
      header.msg_iov = &vec;
      header.msg_iovlen = 1;
      msg = &header;
    }
    result<std::size_t> await_resume() const noexcept { return from_syscall(res); }
  };

  // The next datagram (0 bytes is a valid, empty datagram).
  receive_operation receive_from(std::span<std::byte> buf) noexcept;
  // Sends one datagram to `to`.
  send_operation send_to(std::span<const std::byte> bytes, const endpoint& to) noexcept;

  const endpoint& local() const noexcept { return local_; }
  int native_handle() const noexcept { return fd_.get(); }

 private:
  unique_fd fd_;
  endpoint local_;
};

namespace detail {
struct connect_operation : awaitable_operation<connect_operation> {
  endpoint target;
  void prepare() noexcept {
    addr = target.native();
    addr_len = target.native_size();
  }
  result<void> await_resume() const noexcept {
    if (res < 0) return errno_code(-res);
    return {};
  }
};
}  // namespace detail

// Connects to `where`.
task<result<stream>> connect(endpoint where);
// Resolves `host` and tries every address in turn until one connects
// ("localhost" may give ::1 before 127.0.0.1); the last error otherwise.
task<result<stream>> connect(std::string host, std::uint16_t port);

// Bytes of a string, for write_all and send_to.
inline std::span<const std::byte> as_bytes(std::string_view text) noexcept {
  return std::as_bytes(std::span(text));
}

}  // namespace switchboard

