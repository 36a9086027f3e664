// The echo server as a user runs it: a separate process on the backend under
// test, driven by the echo client (another process) and by raw sockets.
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "../../support/async.hpp"

using namespace switchboard::testing;

namespace {

struct echo_server {
  child_process process;
  std::uint16_t port;

  explicit echo_server(std::vector<std::string> extra = {})
      : process(args(std::move(extra))), port(process.wait_listening()) {
    REQUIRE(port != 0);
  }

  static std::vector<std::string> args(std::vector<std::string> extra) {
    std::vector<std::string> argv{program(), "echo", "--port", "0", "--backend", backend_name()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  command_result client(std::vector<std::string> extra, std::chrono::milliseconds limit = 60s) {
    std::vector<std::string> argv{program(), "echo-client", "--port", std::to_string(port),
                                  "--backend", backend_name()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run_command(argv, limit);
  }
};

}  // namespace

TEST_CASE("echo returns 1 byte, 64 KiB and 8 MiB payloads byte for byte", "[io][echo]") {
  echo_server server;
  for (const char* size : {"1", "65536", "8388608"}) {
    INFO("payload of " << size << " bytes");
    auto result = server.client({"--size", size, "--count", "2"});
    CHECK(result.status == 0);
    CHECK(result.out.find("intact") != std::string::npos);
  }
  auto text = server.client({"--message", "hello, switchboard"});
  CHECK(text.status == 0);
  CHECK(text.out == "hello, switchboard");
}

TEST_CASE("a silent client does not hold up the next one (the seed's lunch problem)", "[io][echo]") {
  echo_server server;
  const int out_to_lunch = raw_connect(server.port);
  auto result = server.client({"--message", "still served", "--timeout", "5"}, 10s);
  CHECK(result.status == 0);
  CHECK(result.out == "still served");
  ::close(out_to_lunch);
}

TEST_CASE("1,000 simultaneous connections each echo 100 messages intact", "[io][echo][load]") {
  echo_server server({"--max-connections-per-source", "1000000"});  // all from 127.0.0.1
  auto result = server.client({"--size", "64", "--count", "100", "--connections", "1000", "--timeout", "100"}, 120s);
  INFO(result.err);
  CHECK(result.status == 0);
}

TEST_CASE("select serves 3,000 simultaneous connections (fds past FD_SETSIZE)", "[io][echo][load]") {
  if (backend_name() != "select") return;
  echo_server server({"--max-connections-per-source", "1000000"});  // all from 127.0.0.1
  auto result = server.client({"--size", "64", "--count", "10", "--connections", "3000", "--timeout", "100"}, 120s);
  INFO(result.err);
  CHECK(result.status == 0);
}

TEST_CASE("a client that resets mid-stream does not disturb the others", "[io][echo]") {
  echo_server server;
  const std::size_t fds_before = open_fds(server.process.pid());
  for (int i = 0; i < 20; ++i) {
    const int rude = raw_connect(server.port);
    std::vector<char> junk(256 * 1024, 'j');
    ::send(rude, junk.data(), junk.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    const linger hard{1, 0};
    ::setsockopt(rude, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    ::close(rude);
    const int polite = raw_connect(server.port);
    ::send(polite, "half", 4, MSG_NOSIGNAL);
    ::close(polite);  // closes mid-stream: the echo finds nobody to read it
  }
  auto result = server.client({"--size", "1000", "--count", "50", "--connections", "20"});
  CHECK(result.status == 0);
  CHECK(server.process.wait_exit(0ms) == std::nullopt);
  // Connections the server saw close are gone from its fd table.
  CHECK(fds_back_to(server.process.pid(), fds_before, 2s));
}

TEST_CASE("echo listens on a Unix path and removes it on SIGTERM", "[io][echo][unix]") {
  temp_dir dir;
  const std::string path = dir.file("echo.sock");
  child_process server({program(), "echo", "--unix", path, "--backend", backend_name()});
  auto line = server.wait_for_line("listening on");
  REQUIRE(line);
  CHECK(*line == "listening on unix:" + path + " (backend " + backend_name() + ")");
  auto result = run_command({program(), "echo-client", "--unix", path, "--message", "via unix",
                             "--backend", backend_name()});
  CHECK(result.status == 0);
  CHECK(result.out == "via unix");
  server.signal(SIGTERM);
  CHECK(server.wait_exit() == 0);
  CHECK(::access(path.c_str(), F_OK) != 0);
}

TEST_CASE("the listening line names the address, transport and backend", "[io][echo]") {
  echo_server server;
  auto line = server.process.wait_for_line("listening on");
  REQUIRE(line);
  CHECK(*line == "listening on 127.0.0.1:" + std::to_string(server.port) + " (tcp, backend " +
                     backend_name() + ")");
}

TEST_CASE("SIGTERM stops an idle echo server with status 0", "[io][echo][signal]") {
  echo_server server;
  server.process.signal(SIGTERM);
  CHECK(server.process.wait_exit() == 0);
}

TEST_CASE("connections waiting in the backlog at SIGTERM are served, not reset", "[io][echo][signal]") {
  echo_server server;
  // A stopped server accepts nothing: the kernel completes these connects
  // and queues them, as it does for a proxy's connects just before a drain.
  server.process.signal(SIGSTOP);
  std::vector<int> waiting;
  for (int i = 0; i < 10; ++i) {
    waiting.push_back(raw_connect(server.port));
    const std::string message = "queued " + std::to_string(i);
    REQUIRE(::send(waiting.back(), message.data(), message.size(), MSG_NOSIGNAL) == ssize_t(message.size()));
  }
  server.process.signal(SIGTERM);
  server.process.signal(SIGCONT);
  for (std::size_t i = 0; i < waiting.size(); ++i) {
    const std::string message = "queued " + std::to_string(i);
    std::string echoed(message.size(), '\0');
    const ssize_t n = ::recv(waiting[i], echoed.data(), echoed.size(), MSG_WAITALL);
    INFO("client " << i << ": " << (n < 0 ? std::strerror(errno) : "read " + std::to_string(n) + " bytes"));
    CHECK(echoed.substr(0, n < 0 ? 0 : std::size_t(n)) == message);
    ::close(waiting[i]);
  }
  CHECK(server.process.wait_exit() == 0);
}

TEST_CASE("SIGUSR1 prints one line of statistics and the server goes on", "[io][echo][signal]") {
  echo_server server;
  REQUIRE(server.client({"--message", "count me"}).status == 0);
  server.process.signal(SIGUSR1);
  auto stats = server.process.wait_for_line("stats:");
  REQUIRE(stats);
  CHECK(stats->find("total 1") != std::string::npos);
  CHECK(stats->find("backend " + backend_name()) != std::string::npos);
  CHECK(server.client({"--message", "still here"}).status == 0);
}
