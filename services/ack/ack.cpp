#include "ack.hpp"

#include <array>
#include <cstdio>
#include <memory>
#include <optional>
#include <string_view>

#include <switchboard/net.hpp>
#include <switchboard/reader.hpp>
#include <switchboard/time.hpp>

#include <switchboard/log.hpp>
#include "protocol.hpp"

namespace switchboard::services::ack {
namespace {

// The longest reply the client takes from a server (ours sends 18 bytes).
constexpr std::size_t max_reply_length = 4096;

}  // namespace

task<void> session(connection& conn) {
  reader<connection>& input = conn.input();
  bool ended = false;
  std::optional<std::size_t> end;
  while (!(end = message_end(input.pending(), ended))) {
    if (!input.pending().empty()) {
      // A message without an end of its own ends when the client pauses;
      // the request timeout still bounds one that drips in slower than that.
      const auto lull_over = clock::now() + lull;
      const auto limit = conn.request_deadline();
      const bool cut_off = limit && *limit < lull_over;
      auto ready = co_await with_deadline(cut_off ? *limit : lull_over, conn.raw().wait_readable());
      if (!ready) {
        if (ready.error() != std::errc::timed_out) co_return;
        if (!cut_off) break;
        ++conn.server().stats.timed_out;
        co_return;
      }
    }
    auto got = co_await input.read_more();
    if (!got) co_return;  // reset, or the idle or request timeout: close
    if (*got == 0) {
      ended = true;
    } else {
      conn.begin_request();
    }
  }
  const std::string_view message = input.pending().substr(0, end.value_or(input.pending().size()));
  const std::string peer = conn.peer().is_unix() ? "unix" : conn.peer().to_string();
  fmt::print("{}\n", announcement(peer, message));
  std::fflush(stdout);
  (void)co_await conn.write_all(reply);  // a client gone already is no matter now
}

task<int> client(const client_options& options) {
  auto conn = co_await connect_to_server(options);
  if (!conn) {
    log("ack-client: connect: {}", conn.error().message());
    co_return exit_failure;
  }
  const std::string line = options.message + "\n";
  if (auto sent = co_await conn->write_all(line); !sent) {
    log("ack-client: send: {}", sent.error().message());
    co_return exit_failure;
  }
  std::string answer;
  std::array<char, 512> chunk;
  while (answer.size() < max_reply_length) {
    auto got = co_await conn->read_some(chunk);
    if (!got) {
      log("ack-client: receive: {}", got.error().message());
      co_return exit_failure;
    }
    if (*got == 0) break;
    answer.append(chunk.data(), *got);
  }
  if (answer.empty()) {
    log("ack-client: the server closed the connection without a reply");
    co_return exit_failure;
  }
  fmt::print("{}\n", answer);
  co_return 0;
}

void add_commands(CLI::App& app, command_list& commands) {
  add_server_command(app, commands, "ack", "print one message from each client and acknowledge it",
                     default_port, [](server_state& server) { return serve_stream(server, session); });

  auto options = std::make_shared<client_options>();
  CLI::App* cli = add_client_command(app, commands, "ack-client",
                                     "ack client: send one message, print the acknowledgement",
                                     *options, default_port, [options] { return client(*options); });
  cli->add_option("-m,--message", options->message, "the message (a LF is added)")
      ->capture_default_str();
}

}  // namespace switchboard::services::ack
