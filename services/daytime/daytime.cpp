#include "daytime.hpp"

#include <array>
#include <memory>
#include <string>
#include <string_view>

#include <switchboard/net.hpp>
#include <switchboard/time.hpp>

#include "../common/datagram_client.hpp"
#include <switchboard/log.hpp>
#include "protocol.hpp"

namespace switchboard::services::daytime {
namespace {

// The longest line the client takes (ours is under 50 bytes).
constexpr std::size_t max_line_length = 1024;

task<result<std::string>> receive_over_stream(const client_options& options) {
  auto conn = co_await connect_to_server(options);
  if (!conn) co_return conn.error();
  std::string line;
  std::array<char, 256> chunk;
  while (line.size() < max_line_length) {
    auto got = co_await conn->read_some(chunk);
    if (!got) co_return got.error();
    if (*got == 0) break;
    line.append(chunk.data(), *got);
  }
  co_return line;
}

}  // namespace

task<void> session(connection& conn) {
  // Then close, whether the line went out or not.
  (void)co_await conn.write_all(daytime_line(std::chrono::system_clock::now()));
}

task<void> answer(datagram_request& request) {
  co_await request.reply(daytime_line(std::chrono::system_clock::now()));
}

task<int> client(const client_options& options) {
  // Not one co_await per branch of ?: (g++ 12 destroys such a result twice).
  auto asked = options.udp ? exchange_datagram(options, {}, options.try_timeout)
                           : receive_over_stream(options);
  auto line = co_await std::move(asked);
  if (!line) {
    log("daytime-client: {}", line.error().message());
    co_return exit_failure;
  }
  if (line->empty()) {
    log("daytime-client: the server closed the connection without a line");
    co_return exit_failure;
  }
  std::string_view text = *line;
  if (text.ends_with('\n')) text.remove_suffix(1);
  if (text.ends_with('\r')) text.remove_suffix(1);
  fmt::print("{}\n", text);
  co_return 0;
}

void add_commands(CLI::App& app, command_list& commands) {
  auto udp = std::make_shared<bool>(false);
  CLI::App* serve = add_server_command(
      app, commands, "daytime", "RFC 867 daytime: the date and time in UTC as one line",
      default_port, [udp](server_state& server) {
        return *udp ? serve_each_datagram(server, max_request_size, answer) : serve_stream(server, session);
      });
  serve->add_flag("--udp", *udp, "answer datagrams instead of connections")->excludes("--unix");

  auto options = std::make_shared<client_options>();
  CLI::App* cli = add_client_command(app, commands, "daytime-client",
                                     "daytime client: print the server's date and time", *options,
                                     default_port, [options] { return client(*options); });
  cli->add_flag("--udp", options->udp, "ask over UDP")->excludes("--unix");
  add_seconds(*cli, "--try-timeout", options->try_timeout,
              "UDP: seconds without a reply before asking again")
      ->check(CLI::PositiveNumber);
}

}  // namespace switchboard::services::daytime
