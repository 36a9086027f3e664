// daytime (seed 003, RFC 867): the date and time as one line, in UTC, in the
// form of protocol.hpp, e.g. "Monday, November 2, 2026 23:04:23-UTC" and
// CRLF. Over TCP (or a Unix path) the line goes out on connect and the
// connection is closed; what the client sends is ignored. Over UDP (--udp)
// any datagram is answered with the line in one datagram, except from a
// source port below 1024 (dropped, against reflection loops).
// RFC 867 uses the privileged port 13; the default here is 1313.
//
//   build/switchboard daytime --port 1313 [--udp]
//   build/switchboard daytime-client [--udp]
//   Try it: socat - TCP:127.0.0.1:1313
#pragma once

#include <chrono>
#include <cstdint>

#include <switchboard/task.hpp>

#include "../common/cli.hpp"
#include <switchboard/server.hpp>

namespace switchboard::services::daytime {

inline constexpr std::uint16_t default_port = 1313;

// Sends the line and closes.
task<void> session(connection& conn);

// What a request holds does not matter; a larger datagram is dropped all the same.
inline constexpr std::size_t max_request_size = 512;

// Answers a datagram with the date and time.
task<void> answer(datagram_request& request);

struct client_options : services::client_options {
  bool udp = false;
  milliseconds try_timeout = std::chrono::seconds(1);  // UDP: wait before asking again
};

// Prints the server's line (without its line end); 0 when one came.
task<int> client(const client_options& options);

void add_commands(CLI::App& app, command_list& commands);

}  // namespace switchboard::services::daytime
