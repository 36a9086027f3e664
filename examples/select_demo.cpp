// Seed 000's selectDemo on the runtime: wait up to N seconds for standard
// input to become readable. Readiness of any descriptor (a pipe, a FIFO, a
// terminal; regular files and /dev/null are always ready) is one operation,
// wait_ready, and a deadline is one wrapper, with_timeout.
//
//   mkfifo myfifo; select-demo < myfifo & echo text > myfifo
#include <unistd.h>

#include <chrono>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <switchboard/cli11.hpp>
#include <switchboard/log.hpp>
#include <switchboard/net.hpp>
#include <switchboard/time.hpp>

using namespace switchboard;

task<int> select_demo(int seconds) {
  auto ready = co_await with_timeout(std::chrono::seconds(seconds), wait_ready(STDIN_FILENO, POLLIN));
  if (ready) {
    fmt::print("Data is available now!\n");
  } else if (ready.error() == std::errc::timed_out) {
    fmt::print("No data within {} seconds\n", seconds);
  } else {
    log("select-demo: standard input: {}", ready.error().message());
    co_return exit_failure;
  }
  co_return 0;
}

int main(int argc, char** argv) {
  CLI::App app{"select-demo: wait up to N seconds for standard input to become readable",
               "select-demo"};
  int seconds = 5;
  std::string backend = "select";
  app.add_option("-s,--seconds", seconds, "how long to wait")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  add_backend_option(app, backend);
  if (auto status = parse_command_line(app, argc, argv)) return *status;
  return run_on_backend(backend, [&] { return select_demo(seconds); });
}
