#include "async.hpp"

#include <netinet/in.h>
#include <unistd.h>
#include <sys/socket.h>

#include <thread>

#include <catch2/catch.hpp>
#include <switchboard/time.hpp>

namespace switchboard::testing {
namespace {

backend_kind chosen = backend_kind::select;

task<bool> bounded(task<void> body, std::chrono::milliseconds limit) {
  deadline_scope scope(co_await this_scope(), clock::now() + limit);
  co_await in_scope(scope, std::move(body));
  co_return scope.expired();
}

}  // namespace

void set_backend(backend_kind kind) { chosen = kind; }
backend_kind backend() { return chosen; }
std::string backend_name() { return std::string(to_string(chosen)); }

void run_async(task<void> body, std::chrono::milliseconds limit, runtime_options options) {
  const std::size_t fds_before = open_fds(::getpid());
  {
    runtime rt(chosen, options);
    const bool expired = rt.run(bounded(std::move(body), limit));
    INFO("the test body ran past its " << limit.count() << " ms deadline");
    REQUIRE_FALSE(expired);
    REQUIRE(rt.in_flight() == 0);
  }
  INFO("descriptors left open by the test body or the runtime");
  CHECK(open_fds(::getpid()) <= fds_before);
}

bool fds_back_to(pid_t pid, std::size_t baseline, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (open_fds(pid) > baseline && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return open_fds(pid) <= baseline;
}

int raw_connect(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  const timeval patience{.tv_sec = 10, .tv_usec = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  return fd;
}

}  // namespace switchboard::testing
