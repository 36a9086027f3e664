// guess (seed 004, exercise 1): the server picks a secret from 1 to N and
// answers each guess with "higher", "lower" or "correct after K tries".
// Over TCP (or a Unix path) one game per connection, closed after
// "correct"; over UDP (--udp) one datagram per guess and per reply, one game
// per client address. The wire format is in protocol.hpp.
//
//   build/switchboard guess --port 8889 --max 100
//   build/switchboard guess-client --auto           # plays by binary search
//   Try it: socat - TCP:127.0.0.1:8889
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>

#include <switchboard/task.hpp>

#include "../common/cli.hpp"
#include <switchboard/server.hpp>
#include "games.hpp"

namespace switchboard::services::guess {

inline constexpr std::uint16_t default_port = 8889;

struct server_settings {
  game_table::settings games;        // --max, and the UDP table's limits
  std::optional<std::uint64_t> seed;  // repeatable secrets
  bool udp = false;
};

// One game over a stream: the greeting, then a reply per line until
// "correct"; a line longer than max_line_length gets an error and the
// connection is closed. Each line is a request (--request-timeout).
task<void> session(connection& conn, std::uint64_t max, secret_source& secrets);

// Runs the server the options describe until SIGINT/SIGTERM; the exit status.
task<int> serve(server_state& server, const server_settings& settings);

struct client_options : services::client_options {
  bool udp = false;
  bool autoplay = false;       // play by binary search instead of from stdin
  std::size_t games = 1;       // with autoplay: that many games at once
  milliseconds try_timeout = std::chrono::milliseconds(500);  // UDP: wait before resending
};

// Plays one game from standard input, or `games` games by itself; 0 when
// every game was won.
task<int> client(const client_options& options);

void add_commands(CLI::App& app, command_list& commands);

}  // namespace switchboard::services::guess
