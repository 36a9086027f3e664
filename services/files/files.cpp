#include "files.hpp"

#include <fcntl.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>

#include <switchboard/cancel.hpp>
#include <switchboard/when_any.hpp>

#include <switchboard/log.hpp>
#include "file_access.hpp"

namespace switchboard::services::files {
namespace {

using protocol::named_request;
using protocol::seed_request;
using protocol::status;

// Each send_file covers at most this much, so that --send-timeout bounds the
// time a client may take to accept 1 MiB rather than the whole file (and the
// count always fits the int a completion carries).
constexpr std::uint64_t send_piece = 1 << 20;

// Names come from the network: escaped and cut short before they reach the log.
std::string printable(std::string_view name) {
  constexpr std::size_t shown = 80;
  const std::string quoted = fmt::format("{:?}", name.substr(0, shown));
  return name.size() > shown ? quoted + "..." : quoted;
}

// Sends bytes [from, size) of `file`; a client that goes away is logged.
task<void> stream_file(connection& conn, int file, std::uint64_t from, std::uint64_t size) {
  for (std::uint64_t at = from; at < size;) {
    const auto count = static_cast<std::size_t>(std::min(send_piece, size - at));
    auto sent = co_await conn.send_file(file, static_cast<std::int64_t>(at), count);
    if (!sent || *sent == 0) {
      log("files: {}: stopped after {} of {} bytes: {}", conn.peer(), at - from, size - from,
          sent ? "the file shrank" : sent.error().message());
      co_return;
    }
    at += *sent;
  }
}

// Reads exactly `bytes.size()` request bytes; false (logged) when the client
// went away or ran out of time first.
task<bool> read_request_part(connection& conn, std::span<std::byte> bytes) {
  auto n = co_await conn.read_exact(bytes);
  if (n && *n == bytes.size()) co_return true;
  log("files: {}: request cut short: {}", conn.peer(),
      n ? "the client closed" : n.error().message());
  co_return false;
}

task<void> seed_session(connection& conn, server_context& context, std::byte first) {
  std::array<std::byte, protocol::command_size + protocol::offset_field_size> buf{};
  buf[0] = first;
  std::size_t have = 1;
  seed_request parsed = protocol::parse_seed_request(std::span(buf).first(have));
  while (parsed.what == seed_request::kind::need_more) {
    if (have == protocol::command_size) {
      // The seed's client sends its command before asking its user for the
      // offset: the wait in between is idle time, and the offset is a
      // request of its own from its first byte.
      conn.end_request();
      auto n = co_await conn.read_some(std::span(buf).subspan(have, 1));
      if (!n || *n == 0) {
        log("files: {}: request cut short after the command: {}", conn.peer(),
            n ? "the client closed" : n.error().message());
        co_return;
      }
      conn.begin_request();
      ++have;
    } else {
      // Never `!co_await ...`: g++ 12 miscompiles a unary operator on a co_await.
      const bool complete = co_await read_request_part(conn, std::span(buf).subspan(have, parsed.needed));
      if (!complete) co_return;
      have += parsed.needed;
    }
    parsed = protocol::parse_seed_request(std::span(buf).first(have));
  }
  conn.end_request();
  if (parsed.what == seed_request::kind::invalid) {
    log("files: {}: {}: closing without data", conn.peer(), parsed.why);
    co_return;
  }
  const auto offset = static_cast<std::uint64_t>(parsed.offset);
  opened_file file = open_served(context.config.file);
  if (file.code != status::ok) {
    log("files: {}: cannot serve {}: {}", conn.peer(), context.config.file, file.why);
    co_return;
  }
  const auto size = static_cast<std::uint64_t>(file.info.st_size);
  if (offset > size) {
    log("files: {}: offset {} is past the end of {} ({} bytes): closing without data",
        conn.peer(), offset, context.config.file, size);
    co_return;
  }
  co_await stream_file(conn, file.fd.get(), offset, size);
}

// Sends a header that refuses the request; the connection then closes.
task<void> refuse(connection& conn, status code, std::uint64_t size = 0) {
  (void)co_await conn.write_all(protocol::encode_header({code, size, {}}));
}

enum class wait_end { ready, timed_out, client_left };

// Waits for `ticket` while watching the client: one that hangs up (or
// resets) ends the wait, and with it its claim on the hash. Bytes a client
// sends after its request mean nothing and are dropped.
task<wait_end> wait_while_connected(connection& conn, digest_service::ticket& ticket,
                                    std::optional<clock::time_point> deadline) {
  std::array<std::byte, 256> ignored;
  for (;;) {
    auto ready = ticket.wait();
    if (deadline) ready.limit_by(*deadline);
    auto first = co_await when_any(std::move(ready), conn.raw().read_some(ignored));
    if (first.index == 0) co_return std::get<0>(first.value) ? wait_end::timed_out : wait_end::ready;
    auto n = std::get<1>(first.value);
    if (!n || *n == 0) co_return wait_end::client_left;
  }
}

// The SHA-256 of `file` for a named request, as its client waits for it:
// no longer than --hash-timeout, and only while the client is there. When
// it returns nothing, the client has left or has been refused.
task<std::optional<digest>> digest_for(connection& conn, server_context& context,
                                       const opened_file& file, const std::string& name) {
  const file_identity version = file_identity::of(file.info);
  digest_service::ticket ticket = context.digests.request(file.fd.get(), version);
  if (!ticket.ready()) {
    const auto timeout = context.config.hash_timeout;
    std::optional<clock::time_point> deadline;
    if (timeout.count() > 0) deadline = clock::now() + timeout;
    const wait_end end = co_await wait_while_connected(conn, ticket, deadline);
    if (end == wait_end::client_left) {
      log("files: {}: {}: the client left while the file was being hashed", conn.peer(), name);
      co_return std::nullopt;
    }
    if (end == wait_end::timed_out) {
      log("files: {}: {}: not hashed within --hash-timeout {} s", conn.peer(), name,
          std::chrono::duration<double>(timeout).count());
      co_await refuse(conn, status::busy);
      co_return std::nullopt;
    }
  }
  auto sha256 = ticket.outcome();
  if (!sha256) {
    const status code = file_identity::now(file.fd.get()) == version ? status::unreadable : status::changed;
    log("files: {}: {}: cannot hash it: {}", conn.peer(), name,
        code == status::changed ? "it changed meanwhile" : sha256.error().message());
    co_await refuse(conn, code);
    co_return std::nullopt;
  }
  co_return *sha256;
}

task<void> named_session(connection& conn, server_context& context) {
  std::array<std::byte, protocol::named_request_max_size> buf{};
  buf[0] = protocol::named_command;
  std::size_t have = 1;
  named_request parsed = protocol::parse_named_request(std::span(buf).first(have));
  while (parsed.what == named_request::kind::need_more) {
    const bool complete = co_await read_request_part(conn, std::span(buf).subspan(have, parsed.needed));
    if (!complete) co_return;
    have += parsed.needed;
    parsed = protocol::parse_named_request(std::span(buf).first(have));
  }
  if (parsed.what == named_request::kind::invalid) {
    // The rest of an over-long request is read and dropped: closing with
    // unread input would reset the connection and could destroy the answer.
    for (std::size_t left = parsed.skip; left > 0;) {
      const std::size_t piece = std::min(left, buf.size());
      const bool complete = co_await read_request_part(conn, std::span(buf).first(piece));
      if (!complete) co_return;
      left -= piece;
    }
    conn.end_request();
    log("files: {}: bad named request: {}", conn.peer(), parsed.why);
    co_await refuse(conn, status::bad_request);
    co_return;
  }
  conn.end_request();
  const std::string name = printable(parsed.name);
  opened_file file = open_beneath(context.root.get(), parsed.name);
  if (file.code != status::ok) {
    log("files: {}: {}: {} ({})", conn.peer(), name, protocol::describe(file.code), file.why);
    co_await refuse(conn, file.code);
    co_return;
  }
  const auto size = static_cast<std::uint64_t>(file.info.st_size);
  if (parsed.offset > size) {
    log("files: {}: {}: offset {} is past the end ({} bytes)", conn.peer(), name, parsed.offset,
        size);
    co_await refuse(conn, status::offset_past_end, size);
    co_return;
  }
  auto sha256 = co_await digest_for(conn, context, file, name);
  if (!sha256) co_return;
  auto sent = co_await conn.write_all(protocol::encode_header({status::ok, size, *sha256}));
  if (!sent) co_return;
  co_await stream_file(conn, file.fd.get(), parsed.offset, size);
}

std::string hashing_stats(const digest_service& digests) {
  const digest_service::counters& c = digests.totals();
  return fmt::format(
      "hashes-running {} hashes-queued {} hashes-started {} hashes-finished {} hashes-failed {} "
      "hashes-cancelled {} bytes-hashed {}",
      digests.running(), digests.queued(), c.started, c.finished, c.failed, c.cancelled, c.bytes);
}

task<int> serve(server_state& server, server_context& context) {
  // Built apart from the co_await: g++ 12 mishandles a capturing lambda
  // inside a co_await expression.
  if (context.config.udp) {
    datagram_fn serve = [&context](datagram_socket& socket, server_state& s) {
      return serve_udp(socket, s, context);
    };
    co_return co_await serve_datagram(server, std::move(serve));
  }
  session_fn serve = [&context](connection& conn) { return session(conn, context); };
  co_return co_await serve_stream(server, std::move(serve));
}

task<int> run_server(server_state& server, const server_config& config) {
  server_context context(config);
  if (!config.root.empty()) {
    context.root = unique_fd(::open(config.root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!context.root) {
      log("files: --root {}: {}", config.root, std::strerror(errno));
      co_return exit_failure;
    }
  }
  if (opened_file probe = open_served(config.file); probe.code != status::ok) {
    log("files: warning: {}: {}; the seed's requests get nothing until it exists", config.file,
        probe.why);
  }
  server.extra_stats = [&context] {
    std::string line = hashing_stats(context.digests);
    if (context.config.udp) {
      line += fmt::format(" udp-transfers {} udp-retries {} udp-evicted {}", context.udp.transfers,
                          context.udp.retries, context.udp.evicted);
    }
    return line;
  };
  task_group background(co_await this_scope());
  background.spawn(context.digests.run(), "files: hashing");
  const int status = co_await serve(server, context);
  background.cancel();
  co_await background.join();
  server.extra_stats = nullptr;
  co_return status;
}

}  // namespace

task<void> session(connection& conn, server_context& context) {
  std::array<std::byte, 1> first;
  auto n = co_await conn.read_some(first);
  if (!n || *n == 0) co_return;
  conn.begin_request();
  if (first[0] == protocol::named_command && context.root) {
    co_await named_session(conn, context);
  } else {
    co_await seed_session(conn, context, first[0]);
  }
}

void add_commands(CLI::App& app, command_list& commands) {
  auto server = std::make_shared<server_state>();
  auto config = std::make_shared<server_config>();
  server->service = "files";
  server->options.limit.udp_rate = default_udp_rate;
  // A download holds its socket, the file, and where the runtime splices
  // (io_uring) a pipe of two descriptors: --max-connections' default leaves room for all four.
  server->fds_per_connection = 4;
  CLI::App* serve = app.add_subcommand(
      "files", "resumable download server: the seed's protocol, named files under --root, or UDP");
  add_server_options(*serve, server->options, default_port);
  serve->add_option("--file", config->file, "the file the seed's protocol serves")
      ->capture_default_str();
  serve->add_option("--root", config->root,
                    "directory whose files named requests may get (none: the extension is off)");
  serve->add_flag("--udp", config->udp, "serve the UDP protocol instead of TCP");
  serve->add_option("--max-hashes", config->hashing.max_running,
                    "files hashed at once for named and UDP downloads, per worker (the others wait their turn)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  add_seconds(*serve, "--hash-timeout", config->hash_timeout,
              "seconds a client may wait for a file's SHA-256 before it is refused as busy (0: no limit)");
  commands.push_back({serve, [server, config] {
                        return run_on_backend(server->options, [server, config] {
                          return run_server(*server, *config);
                        });
                      }});

  auto options = std::make_shared<client_options>();
  CLI::App* cli = app.add_subcommand("files-client", "download a file, or the rest of one");
  add_client_options(*cli, *options, default_port);
  cli->add_option("-o,--output", options->output, "where the file goes")->capture_default_str();
  cli->add_option("-n,--name", options->name,
                  "a file under the server's --root (the named extension, verified by SHA-256)");
  auto* resume = cli->add_flag("--resume", options->resume,
                               "continue from the size of the output file (the seed's command 2)");
  cli->add_option("--offset", options->offset, "start at this byte (the seed's command 1)")
      ->excludes(resume);
  cli->add_flag("--udp", options->udp, "download over UDP (verified by SHA-256)");
  commands.push_back({cli, [options] {
                        return run_client(*options, "files-client",
                                          [options] { return client(*options); });
                      }});
}

}  // namespace switchboard::services::files
