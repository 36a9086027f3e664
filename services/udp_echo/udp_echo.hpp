// udp-echo (seed 004): every datagram goes back to its sender, whole (0 to
// 65,507 bytes). A datagram too large for that is dropped rather than cut,
// so the server never sends more than it received; sources with a port
// below 1024 are dropped, and each source is rate-limited (--udp-rate).
//
//   build/switchboard udp-echo --port 8888
//   build/switchboard udp-echo-client --message hello
//   Try it: socat - UDP:127.0.0.1:8888
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include <switchboard/task.hpp>

#include "../common/cli.hpp"
#include <switchboard/server.hpp>

namespace switchboard::services::udp_echo {

inline constexpr std::uint16_t default_port = 8888;

// Sends a datagram back to its sender.
task<void> echo(datagram_request& request);

struct client_options : services::client_options {
  std::string message = "hello";
  std::optional<std::size_t> size;  // instead: that many pattern bytes, verified
  milliseconds try_timeout = std::chrono::seconds(1);
};

// Sends one datagram and checks that exactly it comes back: prints the echo
// of --message, or a summary for --size. 0 when the echo is intact.
task<int> client(const client_options& options);

void add_commands(CLI::App& app, command_list& commands);

}  // namespace switchboard::services::udp_echo
