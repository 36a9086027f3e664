// udp-relay: a UDP relay that drops and reorders datagrams on purpose, to
// prove that a datagram protocol survives a bad network.
//
//   build/switchboard udp-relay --listen-port 0 --target 127.0.0.1:5001 --loss 0.1 --reorder 0.1
//
// Each client address gets an upstream socket of its own, so the target sees
// one address per client and its answers find their way back. In both
// directions every datagram is dropped with probability --loss; of the rest,
// a --reorder fraction is held back 1 to 20 ms, so that later ones overtake
// it. --seed makes the dice repeatable.
#pragma once

#include <cstdint>
#include <string>

#include "../common/cli.hpp"

namespace switchboard::services::udp_relay {

struct relay_options {
  std::string host = "127.0.0.1";
  std::uint16_t listen_port = 0;
  std::string target;  // HOST:PORT, [IPv6]:PORT
  double loss = 0;
  double reorder = 0;
  std::uint64_t seed = 1;
  std::string backend = "select";
  std::string trace;  // --trace FILE (docs/tracing.md)
  std::size_t trace_limit = runtime_options{}.trace_limit;
};

void add_command(CLI::App& app, command_list& commands);

}  // namespace switchboard::services::udp_relay
