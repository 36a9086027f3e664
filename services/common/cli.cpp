#include "cli.hpp"

#include <sys/resource.h>

#include <cmath>
#include <csignal>
#include <memory>

#include <switchboard/runtime.hpp>
#include <switchboard/time.hpp>

#include "log.hpp"
#include "port.hpp"

namespace switchboard::services {
namespace {

void add_endpoint_options(CLI::App& cmd, std::string& host, std::uint16_t& port,
                          std::string& unix_path, std::uint16_t default_port) {
  port = default_port;
  cmd.add_option("--host", host, "address or name to use (default loopback)")->capture_default_str();
  auto* port_option = add_port_option(cmd, "-p,--port", port, "TCP/UDP port (0: any free port)");
  cmd.add_option("--unix", unix_path, "Unix-domain socket path instead of TCP")
      ->excludes(port_option);
}

}  // namespace

std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int status = app.exit(e);
    return status == 0 ? 0 : exit_usage;
  }
  return std::nullopt;
}

CLI::Option* add_port_option(CLI::App& cmd, const std::string& name, std::uint16_t& port,
                             const std::string& description) {
  const CLI::Validator is_port(
      [](std::string& text) {
        return parse_port(text) ? std::string()
                                : fmt::format("expected a port number from 0 to 65535, got '{}'", text);
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

CLI::Option* add_seconds(CLI::App& cmd, const std::string& name, milliseconds& target,
                         const std::string& description) {
  return cmd
      .add_option_function<double>(
          name, [&target](double seconds) { target = milliseconds(std::llround(seconds * 1000)); },
          description)
      ->check(CLI::NonNegativeNumber)
      ->default_str(fmt::format("{}", static_cast<double>(target.count()) / 1000));
}

void add_backend_option(CLI::App& cmd, std::string& backend) {
  cmd.add_option("-b,--backend", backend, "select, epoll, uring (or io_uring), or auto")
      ->check(CLI::IsMember({"select", "epoll", "uring", "io_uring", "auto"}))
      ->capture_default_str();
}

void add_server_options(CLI::App& cmd, server_options& options, std::uint16_t default_port) {
  add_endpoint_options(cmd, options.host, options.port, options.unix_path, default_port);
  add_backend_option(cmd, options.backend);
  limits& limit = options.limit;
  cmd.add_option("--max-connections", limit.max_connections,
                 "connections served at once; more are closed at once (0: as many as the fd limit holds)")
      ->capture_default_str();
  cmd.add_option("--max-connections-per-source", limit.max_connections_per_source,
                 "connections from one IPv4 address or IPv6 /64 at once; more are closed at once "
                 "(0: a quarter of --max-connections, at most 256)")
      ->capture_default_str();
  add_seconds(cmd, "--idle-timeout", limit.idle_timeout, "seconds without a byte before a client is dropped (0: never)");
  add_seconds(cmd, "--request-timeout", limit.request_timeout, "seconds from a request's first byte to its last (0: no limit)");
  add_seconds(cmd, "--send-timeout", limit.send_timeout, "seconds a client may leave a reply unread (0: no limit)");
  add_seconds(cmd, "--linger-timeout", limit.linger_timeout,
              fmt::format("seconds to wait for a client's EOF after its session, dropping up to {} KiB "
                          "it still sends, so that closing cannot reset the connection under an unread "
                          "reply (0: close at once)",
                          connection::linger_bytes / 1024));
  add_seconds(cmd, "--drain-timeout", limit.drain_timeout, "seconds to let connections finish after SIGINT/SIGTERM/SIGHUP");
  cmd.add_option("--udp-rate", limit.udp_rate,
                 "UDP services: replies per second to one source (an IPv4 address or IPv6 /64, any port)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--log-rate", limit.log_rate,
                 "event lines per second on stderr, more are dropped and counted (0: no limit)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
}

void add_client_options(CLI::App& cmd, client_options& options, std::uint16_t default_port) {
  add_endpoint_options(cmd, options.host, options.port, options.unix_path, default_port);
  add_backend_option(cmd, options.backend);
  cmd.add_option("-t,--timeout", options.timeout_seconds, "seconds before giving up")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
}

task<result<stream>> connect_to_server(const client_options& options) {
  if (!options.unix_path.empty()) {
    auto where = endpoint::unix_path(options.unix_path);
    if (!where) co_return where.error();
    co_return co_await connect(*where);
  }
  co_return co_await connect(options.host, options.port);
}

void prepare_process() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
  std::signal(SIGPIPE, SIG_IGN);
}

int run_on_backend(const std::string& backend, const std::function<task<int>()>& main) {
  prepare_process();
  backend_kind kind = backend_kind::select;
  if (backend == "auto") {
    backend_choice choice = choose_best_backend();
    kind = choice.kind;
    if (choice.passed_over) {
      log("backend auto: uring unavailable ({}); using {}", choice.passed_over->what(),
          to_string(kind));
    } else {
      log("backend auto: using {}", to_string(kind));
    }
  } else if (auto named = parse_backend(backend)) {
    kind = *named;
  }
  std::optional<runtime> rt;
  try {
    rt.emplace(kind);
  } catch (const backend_unavailable& refused) {
    log("error: backend {} unavailable: {}; use --backend epoll, or --backend auto to fall back",
        to_string(kind), refused.what());
    return exit_unavailable;
  }
  try {
    return rt->run(main());
  } catch (const std::exception& e) {
    log("error: {}", e.what());
    return exit_failure;
  }
}

namespace {
task<int> timed_client(clock::duration timeout, std::string_view name,
                       const std::function<task<int>()>& body) {
  deadline_scope bounded(co_await this_scope(), clock::now() + timeout);
  const int status = co_await in_scope(bounded, body());
  if (bounded.expired()) {
    log("{}: timed out", name);
    co_return exit_failure;
  }
  co_return status;
}
}  // namespace

int run_client(const client_options& options, std::string_view name,
               const std::function<task<int>()>& body) {
  const auto timeout = std::chrono::duration_cast<clock::duration>(
      std::chrono::duration<double>(options.timeout_seconds));
  return run_on_backend(options.backend, [&] { return timed_client(timeout, name, body); });
}

CLI::App* add_server_command(CLI::App& app, command_list& commands, const std::string& name,
                             const std::string& description, std::uint16_t default_port,
                             std::function<task<int>(server_state&)> serve) {
  struct named_server {
    std::string name;
    server_state state;
  };
  auto server = std::make_shared<named_server>();
  server->name = name;
  server->state.service = server->name;
  CLI::App* cmd = app.add_subcommand(name, description);
  add_server_options(*cmd, server->state.options, default_port);
  commands.push_back({cmd, [server, serve = std::move(serve)] {
                        return run_on_backend(server->state.options.backend,
                                              [&] { return serve(server->state); });
                      }});
  return cmd;
}

CLI::App* add_client_command(CLI::App& app, command_list& commands, const std::string& name,
                             const std::string& description, client_options& options,
                             std::uint16_t default_port, std::function<task<int>()> body) {
  CLI::App* cmd = app.add_subcommand(name, description);
  add_client_options(*cmd, options, default_port);
  commands.push_back({cmd, [&options, name, body = std::move(body)] {
                        return run_client(options, name, body);
                      }});
  return cmd;
}

}  // namespace switchboard::services
