// build/switchboard: every service, its client, and the tools, as subcommands.
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "ack/ack.hpp"
#include "backends_command.hpp"
#include "bench/bench.hpp"
#include "common/cli.hpp"
#include "daytime/daytime.hpp"
#include "echo/echo.hpp"
#include "files/files.hpp"
#include "guess/guess.hpp"
#include "tour/tour.hpp"
#include "trace_view/trace_view_command.hpp"
#include "udp_echo/udp_echo.hpp"
#include "udp_relay/udp_relay.hpp"

int main(int argc, char** argv) {
  using namespace switchboard;
  using namespace switchboard::services;
  using namespace switchboard::tools;
  CLI::App app{"switchboard: coroutine network services on select, epoll or io_uring",
               "switchboard"};
  app.set_version_flag("--version", SWITCHBOARD_VERSION);
  app.require_subcommand(1);
  app.footer(
      "Exit status: 0 success, 1 failure or timeout, 2 usage error, 69 backend unavailable,\n"
      "128+N a second stop signal N during the drain.");

  command_list commands;
  add_backends_command(app, commands);
  echo::add_commands(app, commands);
  files::add_commands(app, commands);
  udp_relay::add_command(app, commands);
  guess::add_commands(app, commands);
  ack::add_commands(app, commands);
  udp_echo::add_commands(app, commands);
  daytime::add_commands(app, commands);
  tour::add_command(app, commands);
  bench::add_command(app, commands);
  add_trace_view_command(app, commands);

  if (auto status = parse_command_line(app, argc, argv)) return *status;
  for (const command& c : commands) {
    if (c.app->parsed()) return c.run();
  }
  return exit_usage;
}
