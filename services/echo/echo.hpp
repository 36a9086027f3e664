// echo (seeds 001, 004): every byte a client sends comes back, in order,
// until it closes its side; then the server closes too.
//
//   build/switchboard echo --port 7007 --backend epoll
//   build/switchboard echo-client --message hello
//   Try it: socat - TCP:127.0.0.1:7007
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include <switchboard/task.hpp>

#include "../common/cli.hpp"
#include <switchboard/server.hpp>

namespace switchboard::services::echo {

inline constexpr std::uint16_t default_port = 7007;

// Echoes until EOF (then flushes and closes), an error, or a timeout.
task<void> session(connection& conn);

struct client_options : services::client_options {
  std::optional<std::string> message;  // send this once and print the echo
  std::size_t size = 0;                // or: `count` messages of `size` bytes, verified
  std::size_t count = 1;
  std::size_t connections = 1;         // that many clients at once
};

// Without --message or --size, sends standard input and prints the echo.
// Returns 0 when every byte came back intact.
task<int> client(const client_options& options);

// The deterministic payload of message `index` on connection `conn`.
void fill_pattern(std::span<std::byte> bytes, std::size_t conn, std::size_t index);

void add_commands(CLI::App& app, command_list& commands);

}  // namespace switchboard::services::echo
