#include "udp_relay.hpp"

#include <array>
#include <memory>
#include <random>
#include <vector>

#include <switchboard/cancel.hpp>
#include <switchboard/net.hpp>
#include <switchboard/time.hpp>

#include <switchboard/log.hpp>
#include <switchboard/port.hpp>
#include <switchboard/server.hpp>

namespace switchboard::services::udp_relay {
namespace {

using namespace std::chrono_literals;

// Clients relayed at once (each holds a socket), and datagrams held back at once.
constexpr std::size_t max_clients = 256;
constexpr std::size_t max_held = 4096;

struct client_link {
  endpoint client;
  datagram_socket upstream;
};

struct relay_state {
  const relay_options& options;
  endpoint target;
  datagram_socket& front;
  server_state& server;
  std::mt19937_64 dice;
  std::vector<std::unique_ptr<client_link>> clients;
  std::size_t held = 0;
  std::uint64_t forwarded = 0;
  std::uint64_t dropped = 0;
  std::uint64_t reordered = 0;
  task_group tasks;  // the upstream pumps and the held-back datagrams

  double roll() { return std::uniform_real_distribution<double>(0, 1)(dice); }
};

task<void> send_counted(relay_state& relay, datagram_socket& via, std::span<const std::byte> bytes,
                        const endpoint& to) {
  if (auto sent = co_await via.send_to(bytes, to)) {
    relay.server.stats.bytes_out += *sent;
    ++relay.forwarded;
  }
}

task<void> send_later(relay_state& relay, datagram_socket& via, std::vector<std::byte> bytes,
                      endpoint to, clock::duration delay) {
  // Not `if (!co_await ...)`: g++ 12 miscompiles a unary operator on a co_await.
  const std::error_code cancelled = co_await sleep_for(delay);
  if (!cancelled) co_await send_counted(relay, via, bytes, to);
  --relay.held;
}

// Drops the datagram, holds it back, or sends it on, as the dice say.
task<void> forward(relay_state& relay, datagram_socket& via, std::span<const std::byte> bytes,
                   const endpoint& to) {
  if (relay.roll() < relay.options.loss) {
    ++relay.dropped;
    co_return;
  }
  if (relay.roll() < relay.options.reorder && relay.held < max_held) {
    ++relay.held;
    ++relay.reordered;
    const auto delay = std::chrono::microseconds(1000 + relay.dice() % 19'000);
    relay.tasks.spawn(send_later(relay, via, {bytes.begin(), bytes.end()}, to, delay),
                      "udp-relay: held-back datagram");
    co_return;
  }
  co_await send_counted(relay, via, bytes, to);
}

// The target's answers to one client, relayed back through the front socket.
task<void> pump_back(relay_state& relay, client_link& link) {
  std::array<std::byte, 65536> buf;
  for (;;) {
    auto got = co_await link.upstream.receive_from(buf);
    if (!got) {
      if (got.error() == std::errc::operation_canceled) co_return;
      continue;  // an ICMP error for an earlier datagram
    }
    relay.server.stats.bytes_in += got->size;
    if (got->from == relay.target) {
      co_await forward(relay, relay.front, std::span(buf).first(got->size), link.client);
    }
  }
}

client_link* link_for(relay_state& relay, const endpoint& client) {
  for (auto& link : relay.clients) {
    if (link->client == client) return link.get();
  }
  if (relay.clients.size() >= max_clients) return nullptr;
  auto upstream = datagram_socket::open(relay.target.family());
  if (!upstream) {
    log("udp-relay: upstream socket: {}", upstream.error().message());
    return nullptr;
  }
  relay.clients.push_back(std::make_unique<client_link>(client_link{client, std::move(*upstream)}));
  client_link& link = *relay.clients.back();
  relay.tasks.spawn(pump_back(relay, link), fmt::format("udp-relay: answers to {}", client));
  return &link;
}

task<void> relay_datagrams(datagram_socket& front, server_state& server,
                           const relay_options& options, endpoint target) {
  cancel_scope* scope = co_await this_scope();
  relay_state relay{options, target, front, server, std::mt19937_64(options.seed), {}, 0, 0, 0, 0,
                    task_group(scope)};
  std::array<std::byte, 65536> buf;
  for (;;) {
    auto got = co_await front.receive_from(buf);
    if (!got) {
      if (got.error() == std::errc::operation_canceled) break;
      continue;
    }
    server.stats.bytes_in += got->size;
    if (client_link* link = link_for(relay, got->from)) {
      co_await forward(relay, link->upstream, std::span(buf).first(got->size), relay.target);
    }
  }
  relay.tasks.cancel();
  co_await relay.tasks.join();
  notice("udp-relay: forwarded {}, dropped {}, held back {} datagrams for {} clients",
         relay.forwarded, relay.dropped, relay.reordered, relay.clients.size());
}

// HOST:PORT or [IPv6]:PORT.
result<endpoint> parse_target(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) {
    return std::make_error_code(std::errc::invalid_argument);
  }
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const auto port = parse_port(std::string_view(text).substr(colon + 1));
  if (!port || *port == 0) return std::make_error_code(std::errc::invalid_argument);
  auto addresses = resolve(host, *port);
  if (!addresses) return addresses.error();
  if (addresses->empty()) return std::make_error_code(std::errc::address_not_available);
  return addresses->front();
}

task<int> run(const relay_options& options) {
  auto target = parse_target(options.target);
  if (!target) {
    const bool malformed = target.error() == std::errc::invalid_argument;
    log("udp-relay: --target {}: {}", options.target,
        malformed ? "expected HOST:PORT with a port from 1 to 65535" : target.error().message());
    co_return exit_usage;
  }
  server_state server;
  server.service = "udp-relay";
  server.options.host = options.host;
  server.options.port = options.listen_port;
  server.options.backend = options.backend;
  // Built apart from the co_await: g++ 12 mishandles a capturing lambda inside one.
  datagram_fn relay = [&options, &target](datagram_socket& front, server_state& s) {
    return relay_datagrams(front, s, options, *target);
  };
  co_return co_await serve_datagram(server, std::move(relay));
}

}  // namespace

void add_command(CLI::App& app, command_list& commands) {
  auto options = std::make_shared<relay_options>();
  CLI::App* cmd = app.add_subcommand(
      "udp-relay", "relay UDP to a target, dropping and reordering datagrams on purpose");
  cmd->add_option("--host", options->host, "address to listen on")->capture_default_str();
  add_port_option(*cmd, "--listen-port", options->listen_port, "port to listen on (0: any free port)");
  cmd->add_option("--target", options->target, "where to relay to: HOST:PORT")->required();
  cmd->add_option("--loss", options->loss, "fraction of datagrams dropped, each direction")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--reorder", options->reorder, "fraction of the rest held back 1-20 ms")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--seed", options->seed, "seed of the dice")->capture_default_str();
  add_backend_option(*cmd, options->backend);
  add_trace_options(*cmd, options->trace, options->trace_limit);
  commands.push_back({cmd, [options] {
                        return run_on_backend(options->backend,
                                              {.trace = options->trace, .trace_limit = options->trace_limit},
                                              [options] { return run(*options); });
                      }});
}

}  // namespace switchboard::services::udp_relay
