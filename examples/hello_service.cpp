// The service docs/writing-a-service.md builds: ask each client its name,
// greet it, close. One sequential coroutine per client; the runtime and
// serve_stream do the rest.
#include <array>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "common/cli.hpp"
#include <switchboard/server.hpp>

using namespace switchboard;
using namespace switchboard::services;

task<void> greet(connection& client) {
  if (!co_await client.write_all("hello, who are you?\n")) co_return;
  std::string name;
  std::array<std::byte, 64> chunk;
  while (name.find('\n') == std::string::npos) {
    auto n = co_await client.read_some(chunk);  // fails after --idle-timeout
    if (!n || *n == 0) co_return;                // an error, a timeout or EOF: close
    if (name.empty()) client.begin_request();    // now the line has --request-timeout
    name.append(reinterpret_cast<const char*>(chunk.data()), *n);
    if (name.size() > 100) {
      (void)co_await client.write_all("error: name too long\n");
      co_return;
    }
  }
  name.erase(name.find_first_of("\r\n"));
  (void)co_await client.write_all(fmt::format("hello, {}!\n", name));  // closing either way
}

int main(int argc, char** argv) {
  CLI::App app{"hello-service: asks each client its name and greets it", "hello-service"};
  server_state server;
  server.service = "hello";
  add_server_options(app, server.options, 7070);
  if (auto status = parse_command_line(app, argc, argv)) return *status;
  return run_on_backend(server.options.backend, [&] { return serve_stream(server, greet); });
}
