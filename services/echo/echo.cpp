#include "echo.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <memory>
#include <string_view>
#include <vector>

#include <switchboard/cancel.hpp>
#include <switchboard/net.hpp>

#include <switchboard/log.hpp>

namespace switchboard::services::echo {
namespace {

// Sends `bytes` while the caller reads the echo: a client that first wrote
// a large payload and only then read would deadlock against a server whose
// writes block once the client's receive buffer fills.
task<void> send_all(stream& conn, std::span<const std::byte> bytes, std::error_code& error) {
  if (auto sent = co_await conn.write_all(bytes); !sent) error = sent.error();
}

// Sends `payload` and checks that exactly it comes back.
task<result<void>> round_trip(stream& conn, std::span<const std::byte> payload,
                              std::span<std::byte> echoed) {
  std::error_code send_error;
  task_group sender(co_await this_scope());
  sender.spawn(send_all(conn, payload, send_error), "echo-client sender");
  auto received = co_await conn.read_exact(echoed);
  if (!received) sender.cancel();
  co_await sender.join();
  if (send_error) co_return send_error;
  if (!received) co_return received.error();
  if (*received != payload.size()) co_return std::make_error_code(std::errc::connection_reset);
  if (!std::equal(payload.begin(), payload.end(), echoed.begin())) {
    co_return std::make_error_code(std::errc::illegal_byte_sequence);
  }
  co_return result<void>{};
}

task<result<void>> run_connection(const client_options& options, std::size_t conn_index) {
  auto conn = co_await connect_to_server(options);
  if (!conn) co_return conn.error();
  std::vector<std::byte> payload(options.size);
  std::vector<std::byte> echoed(options.size);
  for (std::size_t i = 0; i < options.count; ++i) {
    fill_pattern(payload, conn_index, i);
    if (auto ok = co_await round_trip(*conn, payload, echoed); !ok) co_return ok.error();
  }
  co_return result<void>{};
}

task<void> run_and_record(const client_options& options, std::size_t conn_index,
                          std::size_t& failures) {
  if (auto ok = co_await run_connection(options, conn_index); !ok) {
    if (failures++ == 0) log("echo-client: connection {}: {}", conn_index, ok.error().message());
  }
}

task<int> verified_load(const client_options& options) {
  const auto start = clock::now();
  std::size_t failures = 0;
  task_group clients(co_await this_scope());
  for (std::size_t c = 0; c < options.connections; ++c) {
    clients.spawn(run_and_record(options, c, failures), fmt::format("echo-client #{}", c));
  }
  co_await clients.join();
  const auto ms = std::chrono::duration<double, std::milli>(clock::now() - start).count();
  if (failures > 0) {
    log("echo-client: {} of {} connections failed", failures, options.connections);
    co_return exit_failure;
  }
  fmt::print("echoed {} messages of {} bytes intact over {} connections in {:.1f} ms\n",
             options.count * options.connections, options.size, options.connections, ms);
  co_return 0;
}

task<int> echo_text(const client_options& options, std::string text) {
  auto conn = co_await connect_to_server(options);
  if (!conn) {
    log("echo-client: connect: {}", conn.error().message());
    co_return exit_failure;
  }
  const auto payload = std::as_bytes(std::span(text));
  std::vector<std::byte> echoed(payload.size());
  if (auto ok = co_await round_trip(*conn, payload, echoed); !ok) {
    log("echo-client: {}", ok.error().message());
    co_return exit_failure;
  }
  std::fwrite(echoed.data(), 1, echoed.size(), stdout);
  co_return 0;
}

// Standard input, read through the loop so that a slow pipe does not block it.
task<result<std::string>> read_stdin() {
  std::string all;
  std::array<char, 4096> chunk;
  for (;;) {
    if (auto ready = co_await wait_ready(STDIN_FILENO, POLLIN); !ready) co_return ready.error();
    const ssize_t n = ::read(STDIN_FILENO, chunk.data(), chunk.size());
    if (n == 0) co_return all;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      co_return errno_code(errno);
    }
    all.append(chunk.data(), static_cast<std::size_t>(n));
  }
}

}  // namespace

void fill_pattern(std::span<std::byte> bytes, std::size_t conn, std::size_t index) {
  std::uint32_t state = static_cast<std::uint32_t>(conn * 2654435761u + index * 40503u + 1);
  for (std::byte& b : bytes) {
    state = state * 1103515245u + 12345u;
    b = static_cast<std::byte>(state >> 24);
  }
}

// The runtime lends a buffer only while bytes are in it, so an idle client
// costs no buffer; and since the next read waits for the write, one busy
// client holds one buffer at most.
task<void> session(connection& conn) {
  for (;;) {
    auto chunk = co_await conn.receive();
    if (!chunk || chunk->empty()) co_return;  // EOF, reset or idle timeout: close
    if (auto sent = co_await conn.write_all(chunk->bytes()); !sent) co_return;
  }
}

task<int> client(const client_options& options) {
  if (options.message) co_return co_await echo_text(options, *options.message);
  if (options.size > 0) co_return co_await verified_load(options);
  auto input = co_await read_stdin();
  if (!input) {
    log("echo-client: standard input: {}", input.error().message());
    co_return exit_failure;
  }
  co_return co_await echo_text(options, std::move(*input));
}

void add_commands(CLI::App& app, command_list& commands) {
  add_server_command(app, commands, "echo", "echo server: every byte back until EOF", default_port,
                     [](server_state& server) { return serve_stream(server, session); });

  auto options = std::make_shared<client_options>();
  CLI::App* cli = add_client_command(app, commands, "echo-client", "echo client: send, receive, verify",
                                     *options, default_port, [options] { return client(*options); });
  auto* message = cli->add_option("-m,--message", options->message, "send TEXT and print its echo");
  auto* size = cli->add_option("-s,--size", options->size, "bytes per verified message")
                   ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 30))
                   ->excludes(message);
  cli->add_option("-c,--count", options->count, "messages per connection (with --size)")
      ->check(CLI::PositiveNumber)
      ->needs(size);
  cli->add_option("--connections", options->connections, "connections at once (with --size)")
      ->check(CLI::Range(1, 100000))
      ->needs(size);
}

}  // namespace switchboard::services::echo
