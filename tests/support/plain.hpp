// What the service tests share: a server of ours as a child process on the
// backend under test, its client run as another process, and plain blocking
// sockets that know nothing of switchboard.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "async.hpp"

namespace switchboard::testing {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// `service` on a free port (or as `extra` says) of the backend under test.
struct service_process {
  child_process process;
  std::uint16_t port;

  // Waits for its "listening on" line; `port` stays 0 on a Unix path.
  explicit service_process(const std::string& service, std::vector<std::string> extra = {})
      : process(args(service, extra)), port(on_unix_path(extra) ? 0 : process.wait_listening()) {
    if (on_unix_path(extra)) REQUIRE(process.wait_for_line("listening on unix:"));
  }

  static bool on_unix_path(const std::vector<std::string>& extra) {
    return std::find(extra.begin(), extra.end(), "--unix") != extra.end();
  }

  static std::vector<std::string> args(const std::string& service, const std::vector<std::string>& extra) {
    std::vector<std::string> argv{program(), service, "--backend", backend_name()};
    if (!on_unix_path(extra)) argv.insert(argv.end(), {"--port", "0"});
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  // Our client `name` pointed at this server's port, with `extra` options.
  command_result client(const std::string& name, std::vector<std::string> extra = {},
                        std::chrono::milliseconds limit = 30s) const {
    std::vector<std::string> argv{program(), name, "--port", std::to_string(port), "--backend",
                                  backend_name()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run_command(argv, limit);
  }

  // Waits until the server's stdout holds `needle`.
  bool printed(std::string_view needle, std::chrono::milliseconds limit = 5s) const {
    const auto deadline = steady::now() + limit;
    while (process.out().find(needle) == std::string::npos) {
      if (steady::now() > deadline) return false;
      std::this_thread::sleep_for(10ms);
    }
    return true;
  }

  bool alive() { return !process.wait_exit(0ms); }

  // Its statistics now: after SIGUSR1, the numbers of its next "stats:" line
  // by name ("open 3 total 5 ..." gives open = 3, total = 5).
  std::map<std::string, std::uint64_t> stats() {
    // Complete lines only: the last one may still be on its way.
    const auto complete = [this] {
      std::string err = process.err();
      err.resize(err.rfind('\n') + 1);
      return err;
    };
    const auto lines = [&] {
      const std::string err = complete();
      std::size_t count = 0;
      for (std::size_t at = err.find("stats:"); at != std::string::npos; at = err.find("stats:", at + 1)) ++count;
      return count;
    };
    const std::size_t before = lines();
    process.signal(SIGUSR1);
    const auto deadline = steady::now() + 10s;
    while (lines() == before) {
      REQUIRE(steady::now() < deadline);
      std::this_thread::sleep_for(5ms);
    }
    const std::string err = complete();
    const std::size_t start = err.rfind("stats:") + 6;
    std::istringstream fields(err.substr(start, err.find('\n', start) - start));
    std::map<std::string, std::uint64_t> numbers;
    for (std::string name, value; fields >> name >> value;) {
      if (!value.empty() && std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        numbers[name] = std::stoull(value);
      }
    }
    return numbers;
  }

  // Stops the server by PID as a user would; it exits 0.
  void stop() {
    process.signal(SIGTERM);
    CHECK(process.wait_exit(15s) == 0);
  }
};

// Sends all of `bytes` on blocking socket `fd`; false once the peer has gone.
inline bool send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

inline bool readable(int fd, std::chrono::milliseconds limit) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(limit.count())) == 1;
}

// A blocking socket outside any runtime: TCP over IPv4 or IPv6, a Unix
// stream, or UDP.
class plain_socket {
 public:
  plain_socket(const plain_socket&) = delete;
  plain_socket& operator=(const plain_socket&) = delete;
  plain_socket(plain_socket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  ~plain_socket() { close(); }

  void close() {
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  }

  // Connected over TCP to `host` (numeric, IPv4 or IPv6) at `port`.
  static plain_socket tcp(std::uint16_t port, const char* host = "127.0.0.1") {
    sockaddr_storage addr = address(host, port);
    plain_socket s(::socket(addr.ss_family, SOCK_STREAM, 0));
    REQUIRE(::connect(s.fd_, reinterpret_cast<sockaddr*>(&addr), size_of(addr)) == 0);
    return s;
  }

  static plain_socket unix_stream(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    plain_socket s(::socket(AF_UNIX, SOCK_STREAM, 0));
    REQUIRE(::connect(s.fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    return s;
  }

  // A UDP socket bound to `host`:`port` (0: any free port); nothing, with
  // errno set, when the bind fails.
  static std::optional<plain_socket> udp(std::uint16_t port = 0, const char* host = "127.0.0.1") {
    sockaddr_storage addr = address(host, port);
    plain_socket s(::socket(addr.ss_family, SOCK_DGRAM, 0));
    if (::bind(s.fd_, reinterpret_cast<sockaddr*>(&addr), size_of(addr)) != 0) return std::nullopt;
    return s;
  }

  // Sends all of `bytes`; false once the peer has gone.
  bool send(std::string_view bytes) { return send_all(fd_, bytes); }

  struct received {
    std::string bytes;
    bool closed = false;  // EOF (or a reset) came before the deadline
  };
  // Everything until the peer closes, for at most `limit`.
  received until_closed(std::chrono::milliseconds limit = 5s) {
    received got;
    const auto deadline = steady::now() + limit;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
      if (left.count() <= 0 || !readable(fd_, left)) return got;
      char buf[65536];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        got.closed = true;
        return got;
      }
      got.bytes.append(buf, static_cast<std::size_t>(n));
    }
  }

  void send_to(std::string_view datagram, std::uint16_t port, const char* host = "127.0.0.1") {
    sockaddr_storage addr = address(host, port);
    REQUIRE(::sendto(fd_, datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr*>(&addr),
                     size_of(addr)) == static_cast<ssize_t>(datagram.size()));
  }

  // The next datagram (possibly empty), or nothing after `limit`.
  std::optional<std::string> receive(std::chrono::milliseconds limit = 5s) {
    if (!readable(fd_, limit)) return std::nullopt;
    std::string buf(65536, '\0');
    const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
    if (n < 0) return std::nullopt;
    buf.resize(static_cast<std::size_t>(n));
    return buf;
  }

  // The port this socket is bound to.
  std::uint16_t local_port() const {
    sockaddr_storage addr{};
    socklen_t size = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &size);
    return addr.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                                      : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  }

  int fd() const { return fd_; }

 private:
  explicit plain_socket(int fd) : fd_(fd) { REQUIRE(fd_ >= 0); }

  static sockaddr_storage address(const char* host, std::uint16_t port) {
    sockaddr_storage addr{};
    auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
    if (::inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
      v4->sin_family = AF_INET;
      v4->sin_port = htons(port);
    } else {
      REQUIRE(::inet_pton(AF_INET6, host, &v6->sin6_addr) == 1);
      v6->sin6_family = AF_INET6;
      v6->sin6_port = htons(port);
    }
    return addr;
  }
  static socklen_t size_of(const sockaddr_storage& addr) {
    return addr.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  }

  int fd_;
};

}  // namespace switchboard::testing
