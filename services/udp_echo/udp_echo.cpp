#include "udp_echo.hpp"

#include <memory>
#include <string>
#include <vector>

#include <switchboard/net.hpp>
#include <switchboard/time.hpp>

#include "../common/datagram_client.hpp"
#include <switchboard/log.hpp>
#include "../echo/echo.hpp"

namespace switchboard::services::udp_echo {
namespace {

std::string pattern(std::size_t size) {
  std::string bytes(size, '\0');
  echo::fill_pattern(std::as_writable_bytes(std::span(bytes)), 0, 0);
  return bytes;
}

}  // namespace

task<void> echo(datagram_request& request) { co_await request.reply(request.payload()); }

task<int> client(const client_options& options) {
  const std::string request = options.size ? pattern(*options.size) : options.message;
  auto echoed = co_await exchange_datagram(options, request, options.try_timeout);
  if (!echoed) {
    log("udp-echo-client: {}", echoed.error().message());
    co_return exit_failure;
  }
  if (*echoed != request) {
    log("udp-echo-client: {} bytes sent, {} different bytes came back", request.size(), echoed->size());
    co_return exit_failure;
  }
  if (options.size) {
    fmt::print("echoed a datagram of {} bytes intact\n", request.size());
  } else {
    fmt::print("{}\n", *echoed);
  }
  co_return 0;
}

void add_commands(CLI::App& app, command_list& commands) {
  CLI::App* serve = add_server_command(
      app, commands, "udp-echo", "UDP echo: every datagram back to its sender", default_port,
      [](server_state& server) { return serve_each_datagram(server, max_udp_payload, echo); });
  serve->remove_option(serve->get_option("--unix"));  // datagrams only

  auto options = std::make_shared<client_options>();
  CLI::App* cli = add_client_command(app, commands, "udp-echo-client",
                                     "UDP echo client: send one datagram, check its echo", *options,
                                     default_port, [options] { return client(*options); });
  cli->remove_option(cli->get_option("--unix"));
  auto* message = cli->add_option("-m,--message", options->message, "send TEXT and print its echo")
                      ->capture_default_str();
  cli->add_option("-s,--size", options->size, "send that many pattern bytes and verify the echo")
      ->check(CLI::Range(std::size_t{0}, max_udp_payload))
      ->excludes(message);
  add_seconds(*cli, "--try-timeout", options->try_timeout,
              "seconds without an echo before sending again")
      ->check(CLI::PositiveNumber);
}

}  // namespace switchboard::services::udp_echo
