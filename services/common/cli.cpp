#include "cli.hpp"

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <memory>

#include <switchboard/log.hpp>
#include <switchboard/runtime.hpp>
#include <switchboard/signal.hpp>
#include <switchboard/time.hpp>

namespace switchboard::services {

void add_client_options(CLI::App& cmd, client_options& options, std::uint16_t default_port) {
  add_endpoint_options(cmd, options.host, options.port, options.unix_path, default_port);
  add_backend_option(cmd, options.backend);
  add_trace_options(cmd, options.trace, options.trace_limit);
  cmd.add_option("-t,--timeout", options.timeout_seconds, "seconds before giving up")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
}

runtime_options client_runtime(const client_options& options) {
  return {.trace = options.trace, .trace_limit = options.trace_limit};
}

task<result<stream>> connect_to_server(const client_options& options) {
  if (!options.unix_path.empty()) {
    auto where = endpoint::unix_path(options.unix_path);
    if (!where) co_return where.error();
    co_return co_await connect(*where);
  }
  co_return co_await connect(options.host, options.port);
}

namespace {
// A stop signal ends a client at once, as it would without --trace, but
// closes the trace file validly first.
task<void> close_trace_on_stop(signal_set& signals, std::string_view name) {
  auto sig = co_await signals.next();
  if (!sig) co_return;
  log("{}: {}: stopping", name, ::strsignal(*sig));
  runtime::current().close_trace(fmt::format("{}: client stopped", ::strsignal(*sig)));
  std::_Exit(128 + *sig);
}

task<int> traced_client(std::string_view name, const std::function<task<int>()>& body) {
  signal_set signals{SIGINT, SIGTERM};
  task_group watcher;
  watcher.spawn(close_trace_on_stop(signals, name), "signal watcher");
  const int status = co_await body();
  watcher.cancel();
  co_await watcher.join();
  co_return status;
}

// `body`, or with --trace, `body` beside the watcher that closes the file on a stop signal.
task<int> client_body(const client_options& options, std::string_view name,
                      const std::function<task<int>()>& body) {
  if (options.trace.empty()) return body();
  return traced_client(name, body);
}

task<int> timed_client(const client_options& options, std::string_view name,
                       const std::function<task<int>()>& body) {
  const auto timeout = std::chrono::duration_cast<clock::duration>(
      std::chrono::duration<double>(options.timeout_seconds));
  deadline_scope bounded(co_await this_scope(), clock::now() + timeout);
  const int status = co_await in_scope(bounded, client_body(options, name, body));
  if (bounded.expired()) {
    log("{}: timed out", name);
    co_return exit_failure;
  }
  co_return status;
}
}  // namespace

int run_client(const client_options& options, std::string_view name,
               const std::function<task<int>()>& body) {
  return run_on_backend(options.backend, client_runtime(options),
                        [&] { return timed_client(options, name, body); });
}

int run_untimed_client(const client_options& options, std::string_view name,
                       const std::function<task<int>()>& body) {
  return run_on_backend(options.backend, client_runtime(options),
                        [&] { return client_body(options, name, body); });
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
                        return run_on_backend(server->state.options,
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
