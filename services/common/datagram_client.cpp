#include "datagram_client.hpp"

#include <vector>

#include <switchboard/time.hpp>

namespace switchboard::services {

task<result<std::string>> exchange_datagram(const client_options& options, std::string_view request,
                                            std::chrono::milliseconds try_timeout) {
  auto servers = resolve(options.host, options.port);
  if (!servers) co_return servers.error();
  const endpoint server = servers->front();
  auto socket = datagram_socket::open(server.family());
  if (!socket) co_return socket.error();
  // One byte more than any datagram, so that a larger one shows as truncated.
  std::vector<std::byte> buf(max_udp_payload + 1);
  for (;;) {
    if (auto sent = co_await socket->send_to(std::as_bytes(std::span(request)), server); !sent) {
      co_return sent.error();
    }
    const auto retry_at = clock::now() + try_timeout;
    for (;;) {
      auto got = co_await with_deadline(retry_at, socket->receive_from(buf));
      if (!got) {
        if (got.error() == std::errc::timed_out) break;
        co_return got.error();
      }
      if (got->from == server) {
        co_return std::string(reinterpret_cast<const char*>(buf.data()), got->size);
      }
    }
  }
}

}  // namespace switchboard::services
