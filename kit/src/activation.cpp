#include "activation.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <optional>
#include <string_view>

#include <switchboard/net.hpp>

#include "switchboard/log.hpp"

namespace switchboard::detail {
namespace {

// A whole decimal number, or nothing: LISTEN_PID and LISTEN_FDS are set by
// someone else and taken only when they are exactly what sd_listen_fds reads.
std::optional<long> whole_number(const char* text) {
  if (text == nullptr || *text == '\0') return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(text, &end, 10);
  if (errno != 0 || *end != '\0' || value < 0) return std::nullopt;
  return value;
}

}  // namespace

std::vector<int> take_listen_fds() {
  static bool taken = false;
  if (taken) return {};
  taken = true;
  const auto pid = whole_number(std::getenv("LISTEN_PID"));
  const auto count = whole_number(std::getenv("LISTEN_FDS"));
  // Unset whether or not they were meant for this process: a variable meant
  // for a parent must not reach a child either (sd_listen_fds(3), unset_environment).
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  if (!pid || !count || *pid != ::getpid()) return {};
  std::vector<int> fds;
  for (long i = 0; i < *count; ++i) {
    const int fd = first_listen_fd + static_cast<int>(i);
    const int flags = ::fcntl(fd, F_GETFD);
    if (flags < 0) {
      log("socket activation: LISTEN_FDS says {} descriptors, but fd {} is not open", *count, fd);
      continue;
    }
    ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    fds.push_back(fd);
  }
  return fds;
}

std::string describe_socket(int fd) {
  int type = 0;
  socklen_t size = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &size) != 0) return "not a socket";
  int accepting = 0;
  size = sizeof accepting;
  ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &size);
  sockaddr_storage local{};
  socklen_t local_size = sizeof local;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_size);
  const endpoint where = endpoint::from_native(reinterpret_cast<sockaddr*>(&local), local_size);
  const bool unix_domain = where.is_unix();
  std::string_view kind = "socket";
  if (type == SOCK_STREAM) {
    kind = unix_domain ? (accepting ? "listening Unix stream socket" : "Unix stream socket that is not listening")
                       : (accepting ? "listening TCP socket" : "TCP socket that is not listening");
  } else if (type == SOCK_DGRAM) {
    kind = unix_domain ? "Unix datagram socket" : "UDP socket";
  } else if (type == SOCK_SEQPACKET) {
    kind = "sequenced-packet socket";
  }
  return fmt::format("a {} ({})", kind, where);
}

}  // namespace switchboard::detail
