// A deadline on a whole task, not on one operation: read one line from
// standard input within N seconds. with_timeout(d, read_line()) runs the task
// in a scope its timer cancels, so bytes that drip in slowly do not extend
// it, as a timeout on each read would.
//
//   timeout-demo --seconds 3      # type your name within 3 seconds
#include <unistd.h>

#include <array>
#include <chrono>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <switchboard/cli11.hpp>
#include <switchboard/log.hpp>
#include <switchboard/net.hpp>
#include <switchboard/time.hpp>

using namespace switchboard;

// One line of standard input, without its newline; what came before EOF.
task<result<std::string>> read_line() {
  std::string line;
  std::array<char, 256> chunk;
  for (;;) {
    if (auto ready = co_await wait_ready(STDIN_FILENO, POLLIN); !ready) co_return ready.error();
    const ssize_t n = ::read(STDIN_FILENO, chunk.data(), chunk.size());
    if (n < 0 && errno != EAGAIN && errno != EINTR) co_return errno_code(errno);
    if (n == 0) co_return line;
    if (n < 0) continue;
    line.append(chunk.data(), static_cast<std::size_t>(n));
    if (auto end = line.find('\n'); end != std::string::npos) co_return line.substr(0, end);
  }
}

task<int> ask_name(double seconds) {
  fmt::print(stderr, "your name, within {} seconds? ", seconds);
  const auto limit = std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(seconds));
  auto name = co_await with_timeout(limit, read_line());
  if (name) {
    fmt::print("hello, {}\n", *name);
    co_return 0;
  }
  if (name.error() == std::errc::timed_out) {
    fmt::print("too slow: no line within {} seconds\n", seconds);
  } else {
    log("timeout-demo: standard input: {}", name.error().message());
  }
  co_return exit_failure;
}

int main(int argc, char** argv) {
  CLI::App app{"timeout-demo: read one line from standard input within a deadline", "timeout-demo"};
  double seconds = 5;
  std::string backend = "select";
  app.add_option("-s,--seconds", seconds, "the deadline for the whole line")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  add_backend_option(app, backend);
  if (auto status = parse_command_line(app, argc, argv)) return *status;
  return run_on_backend(backend, [&] { return ask_name(seconds); });
}
