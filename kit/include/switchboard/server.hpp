// What every switchboard server shares: options and limits, the listening
// sockets and their "listening on ..." lines, the accept loop, per-connection
// timeouts and statistics, and the signal-driven shutdown. A service supplies
// only its session coroutine.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <switchboard/buffer.hpp>
#include <switchboard/net.hpp>
#include <switchboard/program.hpp>
#include <switchboard/reader.hpp>
#include <switchboard/runtime.hpp>
#include <switchboard/task.hpp>
#include <switchboard/time.hpp>

namespace switchboard {

using std::chrono::milliseconds;

// The limits every server takes; 0 disables a timeout. Documented with their
// flags in docs/reliability.md.
struct limits {
  std::size_t max_connections = 0;  // 0: as many as the fd limit holds (server_state::fds_per_connection)
  // From one IPv4 address or IPv6 /64 (source_key.hpp); 0: a quarter of
  // max_connections, at most 256, so that no one source takes every slot.
  std::size_t max_connections_per_source = 0;
  milliseconds idle_timeout = std::chrono::seconds(60);
  milliseconds request_timeout = std::chrono::seconds(10);
  milliseconds send_timeout = std::chrono::seconds(30);
  milliseconds drain_timeout = std::chrono::seconds(10);
  // After a session, how long the server waits for the client's EOF before
  // closing (see connection::linger); 0: close at once.
  milliseconds linger_timeout = std::chrono::seconds(5);
  double udp_rate = 200;  // datagram services: replies per second to one source
  double log_rate = 100;  // event lines per second on stderr; 0: no limit
};

struct server_options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::string unix_path;  // listen here instead of TCP when set
  std::string backend = "select";
  limits limit;
  // --trace: a Chrome trace-event JSON file of the run (docs/tracing.md);
  // empty: no tracing. --trace-limit: the events it may hold.
  std::string trace;
  std::size_t trace_limit = runtime_options{}.trace_limit;
  // Processes that serve (--workers): 1, this one; 0, one per CPU this
  // process may run on; more, a supervisor and that many worker processes,
  // each with a runtime of its own on the same sockets (docs/deploying.md).
  // The limits count per worker.
  unsigned workers = 1;
};

// run_on_backend (program.hpp) on options.backend, tracing as --trace and
// --trace-limit say.
int run_on_backend(const server_options& options, const std::function<task<int>()>& main);

struct server_stats {
  std::uint64_t open = 0;
  std::uint64_t total = 0;
  std::uint64_t rejected = 0;  // over --max-connections, or shed when out of fds
  std::uint64_t timed_out = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  // Datagram services: datagrams dropped unanswered, truncated or refused by the guard.
  std::uint64_t dropped = 0;
};

struct server_state {
  std::string_view service;
  server_options options;
  server_stats stats;
  // Descriptors one session may hold at once: its socket and what it opens.
  // --max-connections' default divides the fds it may use by this.
  std::size_t fds_per_connection = 1;
  // The service's own figures for the statistics line ("name value ..."), if any.
  std::function<std::string()> extra_stats;
};

inline std::size_t byte_count(std::size_t moved) noexcept { return moved; }
inline std::size_t byte_count(const buffer& received) noexcept { return received.size(); }

// An awaitable operation that adds the bytes it moved, or its timeout, to
// the server's counters.
template <class Op>
struct counted {
  Op op;
  std::uint64_t* bytes;
  std::uint64_t* timeouts;
  bool* failed;

  bool await_ready() const noexcept { return false; }
  template <class Promise>
  bool await_suspend(std::coroutine_handle<Promise> h) {
    return op.await_suspend(h);
  }
  auto await_resume() noexcept {
    auto moved = op.await_resume();
    if (moved) {
      *bytes += byte_count(*moved);
    } else {
      *failed = true;
      if (moved.error() == std::errc::timed_out) ++*timeouts;
    }
    return moved;
  }
};

// A client's stream as a session sees it: reads fail with timed_out after
// the idle timeout without a byte, or at the request deadline once
// begin_request() started one; writes fail after the send timeout.
class connection {
 public:
  connection(stream s, server_state& server);
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  counted<detail::transfer_operation> read_some(std::span<std::byte> buf);
  // Reads into a runtime-owned buffer lent only once data is there.
  counted<detail::receive_operation> receive();
  counted<detail::transfer_operation> read_exact(std::span<std::byte> buf);
  counted<detail::transfer_operation> write_all(std::span<const std::byte> bytes);
  counted<detail::transfer_operation> write_all(std::string_view text) {
    return write_all(std::as_bytes(std::span(text)));
  }
  // Sends `count` bytes of the regular file `file_fd` from `offset` without
  // copying them (stream::send_file), under the send timeout.
  counted<detail::transfer_operation> send_file(int file_fd, std::int64_t offset, std::size_t count);

  // Buffered reading (switchboard/reader.hpp) under the connection's limits:
  // the wait for a frame's first byte is idle time, and from that byte on
  // the frame is one request, complete within the request timeout however
  // slowly it drips in (unless the session began a longer request itself).
  // read_errc::end_of_stream when the client closed between frames.
  task<result<std::string_view>> read_line(std::size_t max);
  task<result<std::string_view>> read_until(std::string_view delimiter, std::size_t max);
  // The connection's reader, for what the framed reads above do not cover
  // (pending bytes after an error, counted parts, a caller's own framing).
  reader<connection>& input() noexcept { return input_; }

  // A request began (its first byte arrived): it must be complete within the
  // request timeout, however slowly the bytes drip in.
  void begin_request();
  void end_request() { request_deadline_.reset(); }
  // When the request under way must be complete; nothing when none began or it has no limit.
  std::optional<clock::time_point> request_deadline() const noexcept { return request_deadline_; }

  // Closes gracefully after a session: a client's unread bytes would make
  // the kernel answer the close with a reset, which destroys what the client
  // has not read yet (RFC 9112 §9.6). So it sends FIN, then reads and drops
  // what the client still sends until its EOF, for at most linger_bytes
  // and the linger timeout. Not after a read or write failed: the client is
  // gone, or not reading what it was sent.
  task<void> linger();
  static constexpr std::size_t linger_bytes = 64 * 1024;

  const endpoint& peer() const noexcept { return stream_.peer(); }
  stream& raw() noexcept { return stream_; }
  server_state& server() noexcept { return server_; }

 private:
  // Reads one frame with `read` under the request timeout from its first byte.
  template <class Read>
  task<result<std::string_view>> read_frame(Read read);
  // Reads may wait the idle timeout for a byte, and no longer than the request deadline.
  void limit_read(detail::operation& op) const;
  void limit_send(detail::operation& op) const;
  stream stream_;
  server_state& server_;
  std::optional<clock::time_point> request_deadline_;
  bool failed_ = false;  // a read or write ended in an error or a timeout
  reader<connection> input_{*this};
};

// One datagram from a client, as a datagram service's handler sees it. The
// payload is the loop's own buffer: valid until the handler returns.
class datagram_request {
 public:
  datagram_request(datagram_socket& socket, server_state& server, const endpoint& from,
                   std::span<const std::byte> payload) noexcept
      : socket_(socket), server_(server), from_(from), payload_(payload) {}

  const endpoint& from() const noexcept { return from_; }
  std::span<const std::byte> payload() const noexcept { return payload_; }
  std::string_view text() const noexcept {
    return {reinterpret_cast<const char*>(payload_.data()), payload_.size()};
  }
  // Sends `bytes` to the source through the socket the request came on,
  // counted in the statistics. A failed send is not reported: UDP may lose
  // any datagram anyway, and the client asks again.
  task<void> reply(std::span<const std::byte> bytes);
  task<void> reply(std::string_view text) { return reply(std::as_bytes(std::span(text))); }

  server_state& server() noexcept { return server_; }

 private:
  datagram_socket& socket_;
  server_state& server_;
  const endpoint& from_;
  std::span<const std::byte> payload_;
};

using session_fn = std::function<task<void>(connection&)>;
using request_fn = std::function<task<void>(datagram_request&)>;

// What a datagram service runs for each of its bound sockets until stopped.
using datagram_fn = std::function<task<void>(datagram_socket&, server_state&)>;

// Runs a stream service until SIGINT, SIGTERM or SIGHUP (a closed terminal
// or a supervisor's stop: a clean stop all the same): binds every address
// of --host (or --unix), prints one "listening on" line per socket, runs
// `session` for each client and lingers after it (connection::linger),
// prints statistics on SIGUSR1; on the first stop signal stops accepting and
// drains for up to the drain timeout, then cancels what is left; a second
// one exits at once with 128 + its number. Returns the process exit status.
task<int> serve_stream(server_state& server, session_fn session);

// Runs a datagram service the same way: one "listening on ... (udp, ...)"
// line per socket, `serve` per socket, SIGUSR1 statistics, and on
// SIGINT/SIGTERM/SIGHUP cancellation and exit 0.
task<int> serve_datagram(server_state& server, datagram_fn serve);

// Runs a datagram service one datagram at a time, as serve_datagram does
// with a loop of its own: on every socket, receives each datagram, counts
// its bytes, drops one larger than `max_payload` (never handled half-read),
// drops one the datagram guard refuses (a low source port, or over
// --udp-rate for its source: before the handler, so that nothing is spent on
// a reply that would not go out), and hands the rest to `handle`. A
// receive error (an ICMP report of an earlier reply) is logged, rate
// limited, and the loop goes on.
task<int> serve_each_datagram(server_state& server, std::size_t max_payload, request_fn handle);

// The addresses a server binds for its options: --unix, else every
// address of --host.
result<std::vector<endpoint>> listen_endpoints(const server_options& options);

// "listening on 127.0.0.1:7007 (tcp, backend epoll)" and its udp/unix forms.
void print_listening(const endpoint& where, std::string_view transport);

}  // namespace switchboard
