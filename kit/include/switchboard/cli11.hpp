// Optional command-line glue for programs that use CLI11 (Debian: libcli11-dev):
// the server kit's options as flags, with the built-in services' names,
// defaults and help texts. Header-only, so the kit itself needs no CLI
// library: only a program that includes this header does.
//
//   CLI::App app{"hello: greets each client"};
//   switchboard::server_state server;
//   server.service = "hello";
//   switchboard::add_server_options(app, server.options, 7070);
//   if (auto status = switchboard::parse_command_line(app, argc, argv)) return *status;
//   return switchboard::run_on_backend(server.options, [&] { return serve_stream(server, greet); });
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <sstream>
#include <string>

#include <CLI/CLI.hpp>

#include "switchboard/port.hpp"
#include "switchboard/program.hpp"
#include "switchboard/server.hpp"

namespace switchboard {

// Parses the command line: nothing when the program should go on, else the
// status to exit with (0 after --help or --version, 2 on a usage error).
inline std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int status = app.exit(e);
    return status == 0 ? 0 : exit_usage;
  }
  return std::nullopt;
}

// A port option `name` into `port`, its current value shown as the default:
// decimal digits from 0 to 65535 (see parse_port), else a usage error that
// names the option, the range and what the user typed.
inline CLI::Option* add_port_option(CLI::App& cmd, const std::string& name, std::uint16_t& port,
                                    const std::string& description) {
  const CLI::Validator is_port(
      [](std::string& text) {
        return parse_port(text) ? std::string()
                                : "expected a port number from 0 to 65535, got '" + text + "'";
      },
      "");
  // The validator runs before the callback, so the callback's text parses.
  return cmd
      .add_option_function<std::string>(
          name, [&port](const std::string& text) { port = *parse_port(text); }, description)
      ->check(is_port)
      ->type_name("PORT")
      ->default_str(std::to_string(port));
}

// A duration option given in (fractional, non-negative) seconds, its
// current value shown as the default.
inline CLI::Option* add_seconds(CLI::App& cmd, const std::string& name, milliseconds& target,
                                const std::string& description) {
  std::ostringstream shown;
  shown << static_cast<double>(target.count()) / 1000;
  return cmd
      .add_option_function<double>(
          name, [&target](double seconds) { target = milliseconds(std::llround(seconds * 1000)); },
          description)
      ->check(CLI::NonNegativeNumber)
      ->default_str(shown.str());
}

// --backend select|epoll|uring|io_uring|auto.
inline void add_backend_option(CLI::App& cmd, std::string& backend) {
  cmd.add_option("-b,--backend", backend, "select, epoll, uring (or io_uring), or auto")
      ->check(CLI::IsMember({"select", "epoll", "uring", "io_uring", "auto"}))
      ->capture_default_str();
}

// --host, --port (default `default_port`) and --unix: where to listen or connect.
inline void add_endpoint_options(CLI::App& cmd, std::string& host, std::uint16_t& port,
                                 std::string& unix_path, std::uint16_t default_port) {
  port = default_port;
  cmd.add_option("--host", host, "address or name to use (default loopback)")->capture_default_str();
  auto* port_option = add_port_option(cmd, "-p,--port", port, "TCP/UDP port (0: any free port)");
  cmd.add_option("--unix", unix_path, "Unix-domain socket path instead of TCP")->excludes(port_option);
}

// --trace FILE and --trace-limit N: a Chrome trace-event JSON file of the
// run (docs/tracing.md) and the events it may hold.
inline void add_trace_options(CLI::App& cmd, std::string& trace, std::size_t& trace_limit) {
  auto* file = cmd.add_option("--trace", trace,
                              "write a Chrome trace-event JSON file of every task, operation and loop "
                              "turn here (open it at ui.perfetto.dev)")
                   ->type_name("FILE");
  cmd.add_option("--trace-limit", trace_limit,
                 "events the trace file may hold; past them tracing stops and the file says so")
      ->check(CLI::PositiveNumber)
      ->capture_default_str()
      ->needs(file);
}

// --host, --port, --unix, --backend, --workers, --trace, --trace-limit and every limit of `options`.
inline void add_server_options(CLI::App& cmd, server_options& options, std::uint16_t default_port) {
  add_endpoint_options(cmd, options.host, options.port, options.unix_path, default_port);
  add_backend_option(cmd, options.backend);
  add_trace_options(cmd, options.trace, options.trace_limit);
  cmd.add_option("--workers", options.workers,
                 "processes that serve, each a single-threaded runtime on the same sockets, under one "
                 "supervisor that restarts them (0: one per CPU this process may run on)")
      ->capture_default_str();
  limits& limit = options.limit;
  cmd.add_option("--max-connections", limit.max_connections,
                 "connections served at once, per worker; more are closed at once (0: as many as the fd limit holds)")
      ->capture_default_str();
  cmd.add_option("--max-connections-per-source", limit.max_connections_per_source,
                 "connections from one IPv4 address or IPv6 /64 at once, per worker; more are closed at once "
                 "(0: a quarter of --max-connections, at most 256)")
      ->capture_default_str();
  add_seconds(cmd, "--idle-timeout", limit.idle_timeout, "seconds without a byte before a client is dropped (0: never)");
  add_seconds(cmd, "--request-timeout", limit.request_timeout, "seconds from a request's first byte to its last (0: no limit)");
  add_seconds(cmd, "--send-timeout", limit.send_timeout, "seconds a client may leave a reply unread (0: no limit)");
  add_seconds(cmd, "--linger-timeout", limit.linger_timeout,
              "seconds to wait for a client's EOF after its session, dropping up to " +
                  std::to_string(connection::linger_bytes / 1024) +
                  " KiB it still sends, so that closing cannot reset the connection under an unread "
                  "reply (0: close at once)");
  add_seconds(cmd, "--drain-timeout", limit.drain_timeout,
              "seconds to let connections finish after SIGINT/SIGTERM/SIGHUP (0: no limit)");
  cmd.add_option("--udp-rate", limit.udp_rate,
                 "UDP services: replies per second to one source (an IPv4 address or IPv6 /64, any port), "
                 "per worker (one source reaches one worker)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--log-rate", limit.log_rate,
                 "event lines per second on stderr, per process; more are dropped and counted (0: no limit)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
}

}  // namespace switchboard
