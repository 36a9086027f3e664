#include "switchboard/net.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>

#include <fmt/format.h>

#include "backend.hpp"

namespace switchboard {
namespace {

std::error_code last_error() noexcept { return errno_code(errno); }

// An inherited descriptor may be blocking (systemd passes them so unless
// the unit says NonBlocking=yes), and it must not leak into programs the
// service starts. O_NONBLOCK belongs to the open file description, shared
// with whoever passed it on; they hand it over and no longer use it.
result<void> prepare_inherited(int fd, int type, bool listening) noexcept {
  int actual = 0;
  socklen_t size = sizeof actual;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &actual, &size) != 0) return last_error();
  int accepting = 0;
  size = sizeof accepting;
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &size) != 0) return last_error();
  if (actual != type || (accepting != 0) != listening) {
    return std::make_error_code(std::errc::invalid_argument);
  }
  const int status = ::fcntl(fd, F_GETFL);
  if (status < 0 || ::fcntl(fd, F_SETFL, status | O_NONBLOCK) != 0) return last_error();
  const int flags = ::fcntl(fd, F_GETFD);
  if (flags < 0 || ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC) != 0) return last_error();
  return {};
}

result<endpoint> local_endpoint(int fd) noexcept {
  sockaddr_storage local{};
  socklen_t size = sizeof local;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &size) != 0) return last_error();
  return endpoint::from_native(reinterpret_cast<sockaddr*>(&local), size);
}

constexpr socklen_t unix_path_offset = offsetof(sockaddr_un, sun_path);

result<void> set_flag(int fd, int level, int name, bool on) noexcept {
  const int value = on ? 1 : 0;
  if (::setsockopt(fd, level, name, &value, sizeof value) != 0) return last_error();
  return {};
}

// A blocking connect to a Unix path answers ECONNREFUSED when no process
// listens there any more: the file is a leftover and may be replaced. It
// answers the same for a regular file, a FIFO or a symlink, which are
// somebody's data: only a socket itself (lstat, so a link is not followed)
// is ever taken for a leftover.
bool unix_path_is_stale(const endpoint& where) {
  struct stat info {};
  if (::lstat(where.path().c_str(), &info) != 0 || !S_ISSOCK(info.st_mode)) return false;
  unique_fd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe) return false;
  return ::connect(probe.get(), where.native(), where.native_size()) != 0 && errno == ECONNREFUSED;
}

}  // namespace

// endpoint --------------------------------------------------------------------

endpoint::endpoint() noexcept { storage_.ss_family = AF_UNSPEC; }

std::optional<endpoint> endpoint::ip(std::string_view host, std::uint16_t port) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string text(host);
  endpoint ep;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ep.storage_);
  if (::inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    ep.size_ = sizeof(sockaddr_in);
    return ep;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ep.storage_);
  if (::inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    ep.size_ = sizeof(sockaddr_in6);
    return ep;
  }
  return std::nullopt;
}

result<endpoint> endpoint::unix_path(std::string_view path) {
  endpoint ep;
  auto* un = reinterpret_cast<sockaddr_un*>(&ep.storage_);
  if (path.empty()) return std::make_error_code(std::errc::invalid_argument);
  if (path.size() >= sizeof un->sun_path) return std::make_error_code(std::errc::filename_too_long);
  un->sun_family = AF_UNIX;
  std::copy(path.begin(), path.end(), un->sun_path);
  // A leading '@' names a Linux abstract socket: no file, a NUL in its place.
  if (path.front() == '@') un->sun_path[0] = '\0';
  ep.size_ = static_cast<socklen_t>(unix_path_offset + path.size() + (path.front() == '@' ? 0 : 1));
  return ep;
}

endpoint endpoint::from_native(const sockaddr* addr, socklen_t size) noexcept {
  endpoint ep;
  size = std::min<socklen_t>(size, sizeof ep.storage_);
  std::memcpy(&ep.storage_, addr, size);
  ep.size_ = size;
  return ep;
}

std::uint16_t endpoint::port() const noexcept {
  switch (family()) {
    case AF_INET: return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
    case AF_INET6: return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
    default: return 0;
  }
}

endpoint endpoint::with_port(std::uint16_t port) const noexcept {
  endpoint ep = *this;
  if (family() == AF_INET) reinterpret_cast<sockaddr_in*>(&ep.storage_)->sin_port = htons(port);
  if (family() == AF_INET6) reinterpret_cast<sockaddr_in6*>(&ep.storage_)->sin6_port = htons(port);
  return ep;
}

std::string endpoint::path() const {
  if (!is_unix() || size_ <= unix_path_offset) return {};
  const auto* un = reinterpret_cast<const sockaddr_un*>(&storage_);
  const std::size_t length = size_ - unix_path_offset;
  if (un->sun_path[0] == '\0') return "@" + std::string(un->sun_path + 1, length - 1);
  return std::string(un->sun_path, strnlen(un->sun_path, length));
}

std::string endpoint::to_string() const {
  char text[INET6_ADDRSTRLEN] = {};
  switch (family()) {
    case AF_INET:
      ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, text,
                  sizeof text);
      return fmt::format("{}:{}", text, port());
    case AF_INET6:
      ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr, text,
                  sizeof text);
      return fmt::format("[{}]:{}", text, port());
    case AF_UNIX: {
      std::string name = path();
      return name.empty() ? "unix" : "unix:" + name;
    }
    default:
      return "unspecified";
  }
}

bool operator==(const endpoint& a, const endpoint& b) noexcept {
  return a.size_ == b.size_ && std::memcmp(&a.storage_, &b.storage_, a.size_) == 0;
}

result<std::vector<endpoint>> resolve(const std::string& host, std::uint16_t port) {
  if (auto numeric = endpoint::ip(host, port)) return std::vector<endpoint>{*numeric};
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &found); rc != 0) {
    return std::make_error_code(rc == EAI_SYSTEM ? std::errc(errno)
                                                 : std::errc::host_unreachable);
  }
  std::vector<endpoint> all;
  for (const addrinfo* it = found; it; it = it->ai_next) {
    endpoint ep = endpoint::from_native(it->ai_addr, it->ai_addrlen).with_port(port);
    if (std::find(all.begin(), all.end(), ep) == all.end()) all.push_back(ep);
  }
  ::freeaddrinfo(found);
  if (all.empty()) return std::make_error_code(std::errc::host_unreachable);
  return all;
}

// unique_fd -----------------------------------------------------------------

void unique_fd::reset(int fd) noexcept {
  if (fd_ >= 0) {
    if (detail::loop_state* loop = detail::current_loop()) loop->io->forget(fd_);
    ::close(fd_);
  }
  fd_ = fd;
  adopt();
}

void unique_fd::adopt() noexcept {
  if (fd_ < 0) return;
  if (detail::loop_state* loop = detail::current_loop()) loop->io->forget(fd_);
}

// stream --------------------------------------------------------------------

result<void> stream::shutdown_write() noexcept {
  if (::shutdown(fd_.get(), SHUT_WR) != 0) return last_error();
  return {};
}

result<void> stream::set_no_delay(bool on) noexcept { return set_flag(fd_.get(), IPPROTO_TCP, TCP_NODELAY, on); }

result<void> stream::set_keep_alive(bool on) noexcept { return set_flag(fd_.get(), SOL_SOCKET, SO_KEEPALIVE, on); }

result<buffer> detail::receive_operation::await_resume() noexcept {
  if (res < 0) return errno_code(-res);
  if (res == 0) return buffer();
  return buffer(&current_loop()->buffers, buffer_id, static_cast<std::size_t>(res));
}

// listener ------------------------------------------------------------------

listener::listener(listener&& other) noexcept
    : fd_(std::move(other.fd_)), local_(other.local_), owns_path_(std::exchange(other.owns_path_, false)) {}

listener& listener::operator=(listener&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::move(other.fd_);
    local_ = other.local_;
    owns_path_ = std::exchange(other.owns_path_, false);
  }
  return *this;
}

listener::~listener() { close(); }

void listener::close() noexcept {
  fd_.reset();
  if (owns_path_) ::unlink(local_.path().c_str());
  owns_path_ = false;
}

result<listener> listener::bind(const endpoint& where, int backlog) {
  listener l;
  l.fd_ = unique_fd(::socket(where.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!l.fd_) return last_error();
  const int fd = l.fd_.get();
  if (!where.is_unix()) {
    const int on = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  }
  const bool path_socket = where.is_unix() && where.path().front() != '@';
  // Socket files get mode 0660: reachable for the owner and group only.
  const mode_t old_mask = path_socket ? ::umask(0117) : 0;
  int rc = ::bind(fd, where.native(), where.native_size());
  if (rc != 0 && errno == EADDRINUSE && path_socket && unix_path_is_stale(where)) {
    ::unlink(where.path().c_str());
    rc = ::bind(fd, where.native(), where.native_size());
  }
  const int bind_errno = errno;
  if (path_socket) ::umask(old_mask);
  if (rc != 0) return errno_code(bind_errno);
  l.owns_path_ = path_socket;
  if (::listen(fd, backlog) != 0) return last_error();
  if (where.is_unix()) {
    l.local_ = where;
    return l;
  }
  auto local = local_endpoint(fd);
  if (!local) return local.error();
  l.local_ = *local;
  return l;
}

result<listener> listener::adopt(unique_fd fd) {
  if (!fd) return std::make_error_code(std::errc::bad_file_descriptor);
  if (auto ready = prepare_inherited(fd.get(), SOCK_STREAM, true); !ready) return ready.error();
  auto local = local_endpoint(fd.get());
  if (!local) return local.error();
  listener l;
  l.fd_ = std::move(fd);
  l.local_ = *local;
  return l;
}

listener::accept_operation listener::accept() noexcept {
  accept_operation op;
  op.code = detail::op_code::accept;
  op.fd = fd_.get();
  return op;
}

result<stream> listener::try_accept() noexcept {
  sockaddr_storage peer{};
  for (;;) {
    socklen_t size = sizeof peer;
    // Non-blocking like every socket the backends accept (attempt.cpp).
    const int fd = ::accept4(fd_.get(), reinterpret_cast<sockaddr*>(&peer), &size,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) return stream(unique_fd(fd), endpoint::from_native(reinterpret_cast<sockaddr*>(&peer), size));
    // A connection reset while it waited is gone: try the next one.
    if (errno == EINTR || errno == ECONNABORTED) continue;
    return last_error();
  }
}

std::size_t listener::shed_backlog() noexcept {
  std::size_t shed = 0;
  for (;;) {
    const int fd = ::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return shed;
    }
    ::close(fd);  // never seen by a backend: no forget() needed
    ++shed;
  }
}

result<stream> listener::accept_operation::await_resume() noexcept {
  if (res < 0) return errno_code(-res);
  return stream(unique_fd(res), endpoint::from_native(addr, addr_len));
}

// datagram_socket -----------------------------------------------------------

result<datagram_socket> datagram_socket::open(int family) {
  datagram_socket s;
  s.fd_ = unique_fd(::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!s.fd_) return last_error();
  return s;
}

result<datagram_socket> datagram_socket::bind(const endpoint& where) {
  auto opened = open(where.family());
  if (!opened) return opened.error();
  datagram_socket s = std::move(*opened);
  if (::bind(s.fd_.get(), where.native(), where.native_size()) != 0) return last_error();
  auto local = local_endpoint(s.fd_.get());
  if (!local) return local.error();
  s.local_ = *local;
  return s;
}

result<datagram_socket> datagram_socket::adopt(unique_fd fd) {
  if (!fd) return std::make_error_code(std::errc::bad_file_descriptor);
  if (auto ready = prepare_inherited(fd.get(), SOCK_DGRAM, false); !ready) return ready.error();
  auto local = local_endpoint(fd.get());
  if (!local) return local.error();
  datagram_socket s;
  s.fd_ = std::move(fd);
  s.local_ = *local;
  return s;
}

datagram_socket::receive_operation datagram_socket::receive_from(std::span<std::byte> buf) noexcept {
  receive_operation op;
  op.code = detail::op_code::recvmsg;
  op.fd = fd_.get();
  op.vec = {buf.data(), buf.size()};
  return op;
}

result<datagram_socket::datagram> datagram_socket::receive_operation::await_resume() const noexcept {
  if (res < 0) return errno_code(-res);
  return datagram{static_cast<std::size_t>(res),
                  endpoint::from_native(reinterpret_cast<const sockaddr*>(&from), header.msg_namelen),
                  (header.msg_flags & MSG_TRUNC) != 0};
}

datagram_socket::send_operation datagram_socket::send_to(std::span<const std::byte> bytes,
                                                         const endpoint& to) noexcept {
  send_operation op;
  op.code = detail::op_code::sendmsg;
  op.fd = fd_.get();
  op.vec = {const_cast<std::byte*>(bytes.data()), bytes.size()};
  op.to = to;
  return op;
}

// connect -------------------------------------------------------------------

task<result<stream>> connect(endpoint where) {
  unique_fd sock(::socket(where.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!sock) co_return last_error();
  detail::connect_operation op;
  op.code = detail::op_code::connect;
  op.fd = sock.get();
  op.target = where;
  if (auto connected = co_await op; !connected) co_return connected.error();
  co_return stream(std::move(sock), where);
}

task<result<stream>> connect(std::string host, std::uint16_t port) {
  auto addresses = resolve(host, port);
  if (!addresses) co_return addresses.error();
  std::error_code last;
  for (const endpoint& where : *addresses) {
    auto connected = co_await connect(where);
    if (connected) co_return connected;
    last = connected.error();
  }
  co_return last;
}

}  // namespace switchboard
