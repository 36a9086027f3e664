// The service docs/writing-a-service.md builds: ask each client its name,
// greet it, close. One sequential coroutine per client; serve_stream gives it
// the limits, statistics and shutdown of the built-in services.
//
//   hello-service --port 7070 --backend epoll
//   Try it: nc 127.0.0.1 7070
#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <switchboard/cli11.hpp>
#include <switchboard/server.hpp>

using namespace switchboard;

task<void> greet(connection& client) {
  auto asked = co_await client.write_all("hello, who are you?\n");
  if (!asked) co_return;  // not `!co_await ...`: g++ 12 miscompiles a unary operator on a co_await
  // Waits up to --idle-timeout for the first byte, then --request-timeout for the line.
  auto name = co_await client.read_line(100);
  if (!name) {
    if (name.error() == read_errc::too_long) (void)co_await client.write_all("error: name too long\n");
    co_return;  // no line: EOF, a timeout or an error; the connection closes
  }
  (void)co_await client.write_all(fmt::format("hello, {}!\n", *name));  // closing either way
}

int main(int argc, char** argv) {
  CLI::App app{"hello-service: asks each client its name and greets it", "hello-service"};
  server_state server;
  server.service = "hello";
  add_server_options(app, server.options, 7070);
  if (auto status = parse_command_line(app, argc, argv)) return *status;
  return run_on_backend(server.options, [&] { return serve_stream(server, greet); });
}
