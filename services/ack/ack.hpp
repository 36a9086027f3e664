// ack (seeds 000, 003, 004): a client sends one message; the server prints
// it on stdout as "message from <peer>: <text>", replies exactly "I got your
// message" (18 bytes, no line end) and closes. Where a message ends is in
// protocol.hpp.
//
//   build/switchboard ack --port 51717
//   build/switchboard ack-client --message hello
//   Try it: socat - TCP:127.0.0.1:51717
#pragma once

#include <cstdint>
#include <string>

#include <switchboard/task.hpp>

#include "../common/cli.hpp"
#include <switchboard/server.hpp>

namespace switchboard::services::ack {

inline constexpr std::uint16_t default_port = 51717;

// Reads one message, prints it (peer as 127.0.0.1:40000, [::1]:40000 or
// "unix"; flushed per line), replies and closes.
task<void> session(connection& conn);

struct client_options : services::client_options {
  std::string message = "Hello from switchboard";
};

// Sends the message and a LF, prints the reply; 0 when one came.
task<int> client(const client_options& options);

void add_commands(CLI::App& app, command_list& commands);

}  // namespace switchboard::services::ack
