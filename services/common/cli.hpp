// The switchboard program's subcommands (CLI11): every server subcommand
// takes the kit's options (switchboard/cli11.hpp), every client the client
// options below; the exit statuses are the kit's (switchboard/program.hpp).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <switchboard/cli11.hpp>
#include <switchboard/net.hpp>
#include <switchboard/program.hpp>
#include <switchboard/server.hpp>
#include <switchboard/task.hpp>

namespace switchboard::services {

// A subcommand and what runs when the user picked it.
struct command {
  CLI::App* app;
  std::function<int()> run;
};
using command_list = std::vector<command>;

struct client_options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::string unix_path;
  double timeout_seconds = 10;
  std::string backend = "select";
  std::string trace;  // --trace FILE, as a server's (docs/tracing.md)
  std::size_t trace_limit = runtime_options{}.trace_limit;
};

// --host, --port, --unix, --timeout, --backend, --trace, --trace-limit.
void add_client_options(CLI::App& cmd, client_options& options, std::uint16_t default_port);

// The runtime a client runs on: its --trace and --trace-limit.
runtime_options client_runtime(const client_options& options);

// Connects to the server the client options name.
task<result<stream>> connect_to_server(const client_options& options);

// Runs a client's `body` under its --timeout; "timed out" counts as failure.
// With --trace, SIGINT or SIGTERM closes the trace file validly before the
// client exits as the signal would have it (128 + N).
int run_client(const client_options& options, std::string_view name,
               const std::function<task<int>()>& body);
// run_client without the --timeout over the whole run (an interactive client).
int run_untimed_client(const client_options& options, std::string_view name,
                       const std::function<task<int>()>& body);

// Registers server subcommand `name` with the common server options; when
// picked, `serve` runs on the chosen backend with the server's state.
// Returns the subcommand, for the service's own options.
CLI::App* add_server_command(CLI::App& app, command_list& commands, const std::string& name,
                             const std::string& description, std::uint16_t default_port,
                             std::function<task<int>(server_state&)> serve);

// Registers client subcommand `name` with the common client options (into
// `options`, which `body` must keep alive); when picked, `body` runs under
// --timeout. Returns the subcommand, for the client's own options.
CLI::App* add_client_command(CLI::App& app, command_list& commands, const std::string& name,
                             const std::string& description, client_options& options,
                             std::uint16_t default_port, std::function<task<int>()> body);

}  // namespace switchboard::services
