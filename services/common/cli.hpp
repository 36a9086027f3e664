// Command-line conventions shared by every subcommand (CLI11): the server and
// client options, the exit-status table, and running a coroutine main on the
// backend the user named.
//
// Exit status: 0 success; 1 failure (or a client timeout); 2 usage error;
// 69 (EX_UNAVAILABLE) the named backend cannot be set up here; 128 + N a
// second stop signal N cut the drain short.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <switchboard/net.hpp>
#include <switchboard/task.hpp>

#include "server.hpp"

namespace switchboard::services {

inline constexpr int exit_failure = 1;
inline constexpr int exit_usage = 2;
inline constexpr int exit_unavailable = 69;

// A subcommand and what runs when the user picked it.
struct command {
  CLI::App* app;
  std::function<int()> run;
};
using command_list = std::vector<command>;

// Parses the command line: nothing when the program should go on, else the
// status to exit with (0 after --help or --version, 2 on a usage error).
std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv);

// A port option `name` into `port`, its current value shown as the default:
// decimal digits from 0 to 65535 (see parse_port), else a usage error that
// names the option, the range and what the user typed.
CLI::Option* add_port_option(CLI::App& cmd, const std::string& name, std::uint16_t& port,
                             const std::string& description);

// A duration option given in (fractional, non-negative) seconds, its
// current value shown as the default.
CLI::Option* add_seconds(CLI::App& cmd, const std::string& name, milliseconds& target,
                         const std::string& description);

// --backend select|epoll|uring|io_uring|auto.
void add_backend_option(CLI::App& cmd, std::string& backend);

// --host, --port, --unix, --backend and the limits.
void add_server_options(CLI::App& cmd, server_options& options, std::uint16_t default_port);

struct client_options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::string unix_path;
  double timeout_seconds = 10;
  std::string backend = "select";
};

// --host, --port, --unix, --timeout, --backend.
void add_client_options(CLI::App& cmd, client_options& options, std::uint16_t default_port);

// Connects to the server the client options name.
task<result<stream>> connect_to_server(const client_options& options);

// Raises the soft fd limit to the hard one and ignores SIGPIPE (every send
// also carries MSG_NOSIGNAL: belt and braces).
void prepare_process();

// Sets up the backend named `backend` ("auto" picks the best and says why),
// then runs `main` on it. Returns main's status, or 69 when the backend is
// refused, or 1 when main throws.
int run_on_backend(const std::string& backend, const std::function<task<int>()>& main);

// Runs a client's `body` under its --timeout; "timed out" counts as failure.
int run_client(const client_options& options, std::string_view name,
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
