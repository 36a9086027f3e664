// systemd socket activation: the servers started by systemd-socket-activate
// (which binds, waits for the first client, then execs the server in its own
// process with LISTEN_PID and LISTEN_FDS set, as systemd does) serve on the
// sockets they were given, on every backend.
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "../../support/async.hpp"
#include "../../support/processes.hpp"

using namespace switchboard::testing;

namespace {

constexpr const char* activator = "systemd-socket-activate";

// A port that was free a moment ago: bound to port 0, read, closed. The
// activator binds it next; another process taking it in between would fail
// the test loudly, not quietly.
std::uint16_t free_port(int type) {
  const int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t size = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &size) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

bool activator_installed() {
  return run_command({"sh", "-c", std::string("command -v ") + activator}).status == 0;
}

// The activator's "Listening on ..." line: its socket is ready for a client.
void wait_activator_ready(child_process& activated) {
  REQUIRE(activated.wait_for_line("Listening on"));
}

std::string receive_all(int fd, std::size_t size) {
  std::string got;
  char buf[256];
  while (got.size() < size) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got;
}

}  // namespace

TEST_CASE("echo started by systemd-socket-activate serves on the socket it was given", "[io][activation]") {
  if (!activator_installed()) {
    WARN("systemd-socket-activate is not installed (Debian: systemd): not tested");
    return;
  }
  const std::uint16_t port = free_port(SOCK_STREAM);
  const std::string address = "127.0.0.1:" + std::to_string(port);
  child_process activated({activator, "-l", address, program(), "echo", "--backend", backend_name()});
  wait_activator_ready(activated);
  // The first client makes the activator exec the server, which finds this
  // connection waiting on the socket it inherits.
  const int first = raw_connect(port);
  REQUIRE(::send(first, "first", 5, MSG_NOSIGNAL) == 5);
  CHECK(receive_all(first, 5) == "first");
  ::close(first);
  auto line = activated.wait_for_line("listening on 127");
  REQUIRE(line);
  CHECK(*line == "listening on " + address + " (tcp, backend " + backend_name() + ")");
  auto result = run_command({program(), "echo-client", "--port", std::to_string(port), "--message",
                             "activated", "--backend", backend_name()});
  CHECK(result.status == 0);
  CHECK(result.out == "activated");
  activated.signal(SIGTERM);
  CHECK(activated.wait_exit() == 0);
  CHECK_FALSE(running(activated.pid()));
}

TEST_CASE("udp-echo started by systemd-socket-activate --datagram answers the datagram that woke it",
          "[io][activation]") {
  if (!activator_installed()) {
    WARN("systemd-socket-activate is not installed (Debian: systemd): not tested");
    return;
  }
  const std::uint16_t port = free_port(SOCK_DGRAM);
  child_process activated({activator, "--datagram", "-l", "127.0.0.1:" + std::to_string(port), program(),
                           "udp-echo", "--backend", backend_name()});
  wait_activator_ready(activated);
  const int client = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  REQUIRE(client >= 0);
  const timeval patience{.tv_sec = 10, .tv_usec = 0};
  ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (const std::string message : {"wake up", "once more"}) {
    REQUIRE(::sendto(client, message.data(), message.size(), 0, reinterpret_cast<sockaddr*>(&to),
                     sizeof to) == static_cast<ssize_t>(message.size()));
    char buf[64] = {};
    const ssize_t n = ::recv(client, buf, sizeof buf, 0);
    CHECK(std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0) == message);
  }
  ::close(client);
  auto line = activated.wait_for_line("listening on 127");
  REQUIRE(line);
  CHECK(*line == "listening on 127.0.0.1:" + std::to_string(port) + " (udp, backend " + backend_name() + ")");
  activated.signal(SIGTERM);
  CHECK(activated.wait_exit() == 0);
  CHECK_FALSE(running(activated.pid()));
}

TEST_CASE("an activated server on a Unix path serves there and leaves the path to its owner",
          "[io][activation][unix]") {
  if (!activator_installed()) {
    WARN("systemd-socket-activate is not installed (Debian: systemd): not tested");
    return;
  }
  temp_dir dir;
  const std::string path = dir.file("echo.sock");
  child_process activated({activator, "-l", path, program(), "echo", "--backend", backend_name()});
  wait_activator_ready(activated);
  // echo-client's connection wakes the server and is served by it.
  auto result = run_command({program(), "echo-client", "--unix", path, "--message", "via unix",
                             "--backend", backend_name()});
  CHECK(result.status == 0);
  CHECK(result.out == "via unix");
  auto line = activated.wait_for_line("listening on unix");
  REQUIRE(line);
  CHECK(*line == "listening on unix:" + path + " (backend " + backend_name() + ")");
  activated.signal(SIGTERM);
  CHECK(activated.wait_exit() == 0);
  // The socket file belongs to whoever bound it (systemd removes it when the
  // .socket unit stops): a server that did not create it leaves it alone.
  struct stat info {};
  CHECK(::lstat(path.c_str(), &info) == 0);
}

TEST_CASE("a stream service given a UDP socket says so and exits 1", "[io][activation]") {
  if (!activator_installed()) {
    WARN("systemd-socket-activate is not installed (Debian: systemd): not tested");
    return;
  }
  const std::uint16_t port = free_port(SOCK_DGRAM);
  child_process activated({activator, "--datagram", "-l", "127.0.0.1:" + std::to_string(port), program(),
                           "echo", "--backend", backend_name()});
  wait_activator_ready(activated);
  const int client = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::sendto(client, "x", 1, 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  ::close(client);
  CHECK(activated.wait_exit() == 1);
  INFO(activated.err());
  CHECK(activated.err().find("echo: socket activation: fd 3 is a UDP socket (127.0.0.1:" +
                             std::to_string(port) + "), but echo serves listening stream sockets") !=
        std::string::npos);
}

TEST_CASE("an activated server with --workers 2 hands the socket it was given to its workers",
          "[io][activation][workers]") {
  if (!activator_installed()) {
    WARN("systemd-socket-activate is not installed (Debian: systemd): not tested");
    return;
  }
  const std::uint16_t port = free_port(SOCK_STREAM);
  child_process activated({activator, "-l", "127.0.0.1:" + std::to_string(port), program(), "echo", "--workers",
                           "2", "--backend", backend_name()});
  wait_activator_ready(activated);
  auto result = run_command({program(), "echo-client", "--port", std::to_string(port), "--message", "both",
                             "--backend", backend_name()});
  CHECK(result.out == "both");
  auto line = activated.wait_for_line("workers: 2 (pids");
  REQUIRE(line);
  const std::vector<pid_t> workers = pids_in(*line);
  CHECK(workers.size() == 2);
  // One listening line, for the one socket.
  CHECK(activated.err().find("listening on 127") == activated.err().rfind("listening on 127"));
  CHECK(run_command({program(), "echo-client", "--port", std::to_string(port), "--size", "64", "--count", "10",
                     "--connections", "50", "--backend", backend_name()}).status == 0);
  activated.signal(SIGTERM);
  CHECK(activated.wait_exit(20s) == 0);
  for (pid_t pid : workers) CHECK_FALSE(running(pid));
}
