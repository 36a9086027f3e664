// One request, one reply over UDP, as the small datagram clients need it.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include <switchboard/net.hpp>
#include <switchboard/task.hpp>

#include "cli.hpp"

namespace switchboard::services {

// The largest UDP payload over IPv4: 65,535 less the IP and UDP headers.
inline constexpr std::size_t max_udp_payload = 65'507;

// Sends `request` in one datagram to the server the options name and returns
// the first datagram that comes back from that address, sending the request
// again after each `try_timeout` without one (UDP may lose either). The
// client's --timeout bounds the whole exchange.
task<result<std::string>> exchange_datagram(const client_options& options, std::string_view request,
                                            std::chrono::milliseconds try_timeout);

}  // namespace switchboard::services
