#include "switchboard/server.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <type_traits>

#include <switchboard/cancel.hpp>
#include <switchboard/signal.hpp>

#include "activation.hpp"
#include "workers.hpp"
#include "switchboard/datagram_guard.hpp"
#include "switchboard/log.hpp"
#include "switchboard/source_key.hpp"

namespace switchboard {
namespace {

using namespace std::chrono_literals;

// Descriptors kept back from --max-connections' default for listeners, the
// backend, the signalfd, the runtime's spare pipes and the spare descriptor.
constexpr std::size_t reserved_fds = 64;

// As many connections as the fd limit holds when each holds all it may.
std::size_t default_max_connections(std::size_t fds_per_connection) {
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  const auto soft = static_cast<std::size_t>(limit.rlim_cur);
  const std::size_t usable = soft > 2 * reserved_fds ? soft - reserved_fds : soft / 2;
  return std::max<std::size_t>(usable / std::max<std::size_t>(fds_per_connection, 1), 1);
}

std::optional<clock::time_point> deadline_after(milliseconds timeout) {
  if (timeout.count() <= 0) return std::nullopt;
  return clock::now() + timeout;
}

// What a server of `Socket`s takes, for messages.
template <class Socket>
constexpr std::string_view socket_kind() {
  return std::is_same_v<Socket, listener> ? "listening stream sockets (TCP or Unix)" : "datagram sockets (UDP)";
}

// The sockets a service manager passed on (socket activation), taken over
// instead of binding: --host, --port and --unix then do not apply. Each must
// be of the kind the service serves; nothing, with the reason logged, when
// one is not (a stream service given a UDP socket: a unit that does not match
// its service).
template <class Socket>
std::optional<std::vector<Socket>> adopt_every_socket(const server_state& server, const std::vector<int>& fds) {
  std::vector<Socket> sockets;
  for (const int fd : fds) {
    const std::string what = detail::describe_socket(fd);
    auto adopted = Socket::adopt(unique_fd(fd));
    if (!adopted) {
      log("{}: socket activation: fd {} is {}, but {} serves {} only ({})", server.service, fd, what,
          server.service, socket_kind<Socket>(), adopted.error().message());
      return std::nullopt;
    }
    sockets.push_back(std::move(*adopted));
  }
  return sockets;
}

// A `Socket` (listener or datagram_socket) bound to every address the
// options name, or the sockets a service manager passed on; nothing, with
// the reason logged, when one cannot be.
template <class Socket>
std::optional<std::vector<Socket>> bind_every_address(const server_state& server) {
  if (const std::vector<int> inherited = detail::take_listen_fds(); !inherited.empty()) {
    return adopt_every_socket<Socket>(server, inherited);
  }
  auto addresses = listen_endpoints(server.options);
  if (!addresses) {
    log("{}: cannot listen on {}: {}", server.service,
        server.options.unix_path.empty() ? server.options.host : server.options.unix_path,
        addresses.error().message());
    return std::nullopt;
  }
  std::vector<Socket> sockets;
  for (const endpoint& where : *addresses) {
    auto bound = Socket::bind(where);
    if (!bound) {
      log("{}: bind {}: {}", server.service, where, bound.error().message());
      return std::nullopt;
    }
    sockets.push_back(std::move(*bound));
  }
  return sockets;
}

// One line of statistics; a worker's names it, and goes to its supervisor
// too, which adds the workers' lines up.
void print_stats(const server_state& server) {
  const server_stats& s = server.stats;
  const std::string extra = server.extra_stats ? " " + server.extra_stats() : "";
  const std::string figures =
      fmt::format("open {} total {} rejected {} timed-out {} bytes-in {} bytes-out {} dropped {} "
                  "log-dropped {} backend {}{}",
                  s.open, s.total, s.rejected, s.timed_out, s.bytes_in, s.bytes_out, s.dropped,
                  diagnostics().dropped(), to_string(runtime::current().backend()), extra);
  const auto& worker = detail::this_worker();
  if (!worker) {
    notice("{}: stats: {}", server.service, figures);
    return;
  }
  notice("{}: worker {} (pid {}): stats: {}", server.service, worker->index, ::getpid(), figures);
  // One short line into a non-blocking pipe: whole or not at all (PIPE_BUF).
  const std::string line = figures + "\n";
  [[maybe_unused]] const ssize_t written = ::write(worker->report_fd, line.data(), line.size());
}

// How many processes serve: --workers, and 1 in a worker itself.
unsigned workers_wanted(const server_state& server) {
  if (detail::this_worker()) return 1;
  return detail::worker_count(server.options.workers);
}

// A socket on `where` that other sockets of this user may bind too
// (SO_REUSEPORT): the kernel then spreads connections (a listener) or source
// addresses (a datagram socket) over them by a hash of the addresses.
template <class Socket>
result<Socket> bind_shared_port(const endpoint& where) {
  constexpr bool stream = std::is_same_v<Socket, listener>;
  unique_fd fd(::socket(where.family(), (stream ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return errno_code(errno);
  const int on = 1;
  if (stream) ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) return errno_code(errno);
  if (::bind(fd.get(), where.native(), where.native_size()) != 0) return errno_code(errno);
  if (stream && ::listen(fd.get(), SOMAXCONN) != 0) return errno_code(errno);
  return Socket::adopt(std::move(fd));
}

// --workers: each worker gets SO_REUSEPORT sockets of its own on every
// address, so that the kernel spreads TCP connections evenly over the
// workers (one shared queue would let whichever worker runs first take a
// whole burst), and one UDP client's datagrams reach the same worker (the
// guessing game keeps a client's state there). The supervisor holds them
// all, so that the group never changes while it runs: a worker that dies is
// replaced on the same sockets, and the connections queued on its listener
// wait for the replacement instead of being reset. Sockets a service manager
// passed on, and a Unix path (which cannot be bound twice), are shared by
// every worker instead.
template <class Socket>
task<int> supervise_workers(server_state& server, unsigned workers, std::string_view transport) {
  std::vector<std::vector<Socket>> sockets(workers);
  if (const std::vector<int> inherited = detail::take_listen_fds(); !inherited.empty()) {
    auto adopted = adopt_every_socket<Socket>(server, inherited);
    if (!adopted) co_return 1;
    sockets[0] = std::move(*adopted);
  } else if (!server.options.unix_path.empty()) {
    auto bound = bind_every_address<Socket>(server);
    if (!bound) co_return 1;
    sockets[0] = std::move(*bound);
  } else {
    auto addresses = listen_endpoints(server.options);
    if (!addresses) {
      log("{}: cannot listen on {}: {}", server.service, server.options.host, addresses.error().message());
      co_return 1;
    }
    for (unsigned k = 0; k < workers; ++k) {
      for (std::size_t i = 0; i < addresses->size(); ++i) {
        // Port 0: the first worker's socket picks the port, the others join it.
        const endpoint where = k == 0 ? (*addresses)[i] : (*addresses)[i].with_port(sockets[0][i].local().port());
        auto bound = bind_shared_port<Socket>(where);
        if (!bound) {
          log("{}: bind {}: {}", server.service, where, bound.error().message());
          co_return 1;
        }
        sockets[k].push_back(std::move(*bound));
      }
    }
  }
  std::vector<std::vector<int>> fds(workers);
  std::vector<endpoint> where;
  for (const Socket& s : sockets[0]) where.push_back(s.local());
  for (unsigned k = 0; k < workers; ++k) {
    const auto& own = sockets[k].empty() ? sockets[0] : sockets[k];
    for (const Socket& s : own) fds[k].push_back(s.native_handle());
  }
  // Built apart from the co_await: g++ 12 mishandles a capturing lambda inside
  // one. Closing them removes a Unix path: the supervisor alone does that.
  std::function<void()> stop = [&sockets] { sockets.clear(); };
  const int status = co_await detail::supervise(server, std::move(fds), std::move(where), transport, std::move(stop));
  co_return status;
}

// The signals that stop a server. SIGHUP comes when the terminal it was
// started from closes, and from supervisors: without a handler it would kill
// the process without draining and leave a Unix socket file behind.
bool is_stop_signal(int sig) { return sig == SIGINT || sig == SIGTERM || sig == SIGHUP; }

// The stop signals and SIGUSR1, taken over from here on. A server started to
// ignore SIGHUP (nohup) goes on ignoring it: once blocked for the signalfd,
// an ignored signal would be delivered after all.
signal_set server_signals() {
  struct sigaction hangup {};
  ::sigaction(SIGHUP, nullptr, &hangup);
  if (hangup.sa_handler == SIG_IGN) return signal_set{SIGINT, SIGTERM, SIGUSR1};
  return signal_set{SIGINT, SIGTERM, SIGHUP, SIGUSR1};
}

// Once the "listening on" lines are out (scripts wait for them, so they may
// wait for stderr), nothing the server logs may block the loop.
void log_without_blocking(const server_state& server) {
  diagnostics().limit_rate(server.options.limit.log_rate);
  diagnostics().never_block();
}

// Keeps one descriptor in reserve so that, when accept() fails for lack of
// descriptors, the server can still take the waiting callers off the
// backlog and close them instead of leaving them hanging (and the listener
// forever readable, which would spin a level-triggered loop).
class spare_descriptor {
 public:
  spare_descriptor() { reopen(); }
  std::size_t shed(listener& l) {
    fd_.reset();
    const std::size_t shed = l.shed_backlog();
    reopen();
    return shed;
  }

 private:
  void reopen() { fd_ = unique_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC)); }
  unique_fd fd_;
};

// A connection's place in the count of its source, given back when it ends.
class source_share {
 public:
  source_share(source_counts& counts, source_key source) : counts_(counts), source_(source) {}
  ~source_share() { counts_.remove(source_); }
  source_share(const source_share&) = delete;
  source_share& operator=(const source_share&) = delete;

 private:
  source_counts& counts_;
  source_key source_;
};

task<void> run_session(server_state& server, const session_fn& session, stream client,
                       source_counts& per_source) {
  const source_key source = source_key::of(client.peer());
  source_share share(per_source, source);
  connection conn(std::move(client), server);
  co_await session(conn);
  co_await conn.linger();
}

// Admits accepted connections: over --max-connections or the source's
// share they are closed at once and counted, else served in `connections`.
class admission {
 public:
  admission(server_state& server, const session_fn& session, task_group& connections,
            source_counts& per_source)
      : server_(server), session_(session), connections_(connections), per_source_(per_source) {}

  void admit(stream client);

 private:
  server_state& server_;
  const session_fn& session_;
  task_group& connections_;
  source_counts& per_source_;
  log_limiter limit_log_, source_log_;
};

void admission::admit(stream client) {
  const std::size_t max_connections = server_.options.limit.max_connections;
  if (server_.stats.open >= max_connections) {
    ++server_.stats.rejected;
    if (std::uint64_t skipped = 0; limit_log_.allow(skipped)) {
      log("{}: --max-connections {} reached: closing {} ({} more)", server_.service, max_connections,
          client.peer(), skipped);
    }
    return;  // the stream closes here
  }
  if (const source_key source = source_key::of(client.peer()); !per_source_.try_add(source)) {
    ++server_.stats.rejected;
    if (std::uint64_t skipped = 0; source_log_.allow(skipped)) {
      log("{}: --max-connections-per-source {} reached by {}: closing {} ({} more)", server_.service,
          server_.options.limit.max_connections_per_source, source.to_string(), client.peer(), skipped);
    }
    return;
  }
  ++server_.stats.open;
  ++server_.stats.total;
  std::string name =
      fmt::format("{} connection #{} from {}", server_.service, server_.stats.total, client.peer());
  connections_.spawn(run_session(server_, session_, std::move(client), per_source_), std::move(name));
}

task<void> accept_loop(listener& l, server_state& server, admission& admit, spare_descriptor& spare) {
  log_limiter emfile_log;
  auto backoff = 1ms;
  for (;;) {
    auto accepted = co_await l.accept();
    if (!accepted) {
      const std::error_code error = accepted.error();
      if (error == std::errc::operation_canceled || error == std::errc::bad_file_descriptor) {
        co_return;
      }
      if (error == std::errc::too_many_files_open ||
          error == std::errc::too_many_files_open_in_system) {
        const std::size_t shed = spare.shed(l);
        server.stats.rejected += shed;
        if (std::uint64_t skipped = 0; emfile_log.allow(skipped)) {
          log("{}: out of file descriptors ({}): closed {} waiting connections ({} more events)",
              server.service, error.message(), shed, skipped);
        }
        // Backing off keeps a full fd table from turning into a busy loop.
        co_await sleep_for(backoff);
        backoff = std::min<milliseconds>(backoff * 2, 1s);
        continue;
      }
      if (error != std::errc::connection_aborted && error != std::errc::interrupted) {
        log("{}: accept on {}: {}", server.service, l.local(), error.message());
        co_await sleep_for(10ms);
      }
      continue;
    }
    backoff = 1ms;
    admit.admit(std::move(*accepted));
  }
}

// The connections the kernel completed before the listener closes: closing
// would reset them, and a client that saw its connect succeed (a proxy in
// front, which then cannot retry it elsewhere) would lose its request. Those
// that arrive after the last look here are still reset; see
// docs/deploying.md for taking an instance out of a balancer first. At most
// one full backlog (listener::bind's default), so that a flood of connects
// cannot hold the stop up. With --workers the supervisor closes its copies
// first, so that the last to close each listener is a worker, which takes
// what waits there as it stops, within the same bound.
void admit_waiting(listener& l, server_state& server, admission& admit) {
  for (int taken = 0; taken < SOMAXCONN; ++taken) {
    auto waiting = l.try_accept();
    if (!waiting) {
      const std::error_code error = waiting.error();
      if (error != std::errc::operation_would_block && error != std::errc::too_many_files_open &&
          error != std::errc::too_many_files_open_in_system) {
        log("{}: accept on {}: {}", server.service, l.local(), error.message());
      }
      return;  // out of descriptors: the rest are reset with the listener
    }
    admit.admit(std::move(*waiting));
  }
}

// Between the first stop signal and the end of the drain: SIGUSR1 still
// reports, and another stop signal ends the process at once.
task<void> exit_on_second_signal(signal_set& signals, server_state& server) {
  for (;;) {
    auto sig = co_await signals.next();
    if (!sig) co_return;
    if (*sig == SIGUSR1) {
      print_stats(server);
      continue;
    }
    notice("{}: second signal ({}): exiting now", server.service, ::strsignal(*sig));
    // The drain will not end: a --trace file is closed here or not at all.
    runtime::current().close_trace(fmt::format("second signal ({}): exiting now", ::strsignal(*sig)));
    std::_Exit(128 + *sig);
  }
}

// Waits for a stop signal, printing statistics on each SIGUSR1 meanwhile.
task<void> wait_for_stop(signal_set& signals, server_state& server, std::string_view what) {
  for (;;) {
    auto sig = co_await signals.next();
    if (!sig) {
      notice("{}: waiting for signals: {}", server.service, sig.error().message());
      co_return;
    }
    if (is_stop_signal(*sig)) {
      notice("{}: {}: {}", server.service, ::strsignal(*sig), what);
      co_return;
    }
    print_stats(server);
  }
}

}  // namespace

connection::connection(stream s, server_state& server) : stream_(std::move(s)), server_(server) {}

connection::~connection() { --server_.stats.open; }

task<void> connection::linger() {
  const milliseconds timeout = server_.options.limit.linger_timeout;
  if (failed_ || timeout.count() <= 0 || !stream_.shutdown_write()) co_return;
  const auto deadline = clock::now() + timeout;
  for (std::size_t drained = 0; drained < linger_bytes;) {
    auto dropped = co_await with_deadline(deadline, stream_.receive());
    if (!dropped || dropped->empty()) co_return;
    drained += dropped->size();
    server_.stats.bytes_in += dropped->size();
  }
}

// The counters and limits are set on the operation in place: it is a large
// record, and these run for every read and write.
void connection::limit_read(detail::operation& op) const {
  if (server_.options.limit.idle_timeout.count() > 0) op.limit_for(server_.options.limit.idle_timeout);
  if (request_deadline_) op.limit_by(*request_deadline_);
}

void connection::limit_send(detail::operation& op) const {
  if (server_.options.limit.send_timeout.count() > 0) op.limit_for(server_.options.limit.send_timeout);
}

counted<detail::transfer_operation> connection::read_some(std::span<std::byte> buf) {
  counted<detail::transfer_operation> op{stream_.read_some(buf), &server_.stats.bytes_in,
                                         &server_.stats.timed_out, &failed_};
  limit_read(op.op);
  return op;
}

counted<detail::receive_operation> connection::receive() {
  counted<detail::receive_operation> op{stream_.receive(), &server_.stats.bytes_in,
                                        &server_.stats.timed_out, &failed_};
  limit_read(op.op);
  return op;
}

counted<detail::transfer_operation> connection::read_exact(std::span<std::byte> buf) {
  counted<detail::transfer_operation> op{stream_.read_exact(buf), &server_.stats.bytes_in,
                                         &server_.stats.timed_out, &failed_};
  limit_read(op.op);
  return op;
}

counted<detail::transfer_operation> connection::write_all(std::span<const std::byte> bytes) {
  counted<detail::transfer_operation> op{stream_.write_all(bytes), &server_.stats.bytes_out,
                                         &server_.stats.timed_out, &failed_};
  limit_send(op.op);
  return op;
}

counted<detail::transfer_operation> connection::send_file(int file_fd, std::int64_t offset,
                                                          std::size_t count) {
  counted<detail::transfer_operation> op{stream_.send_file(file_fd, offset, count),
                                         &server_.stats.bytes_out, &server_.stats.timed_out, &failed_};
  limit_send(op.op);
  return op;
}

template <class Read>
task<result<std::string_view>> connection::read_frame(Read read) {
  if (input_.pending().empty()) {
    auto first = co_await input_.read_more();  // idle time until a byte comes
    if (!first) co_return first.error();
    if (*first == 0) co_return read_errc::end_of_stream;
  }
  const bool began_here = !request_deadline_;
  begin_request();
  auto frame = co_await read(input_);
  if (began_here) end_request();
  co_return frame;
}

task<result<std::string_view>> connection::read_line(std::size_t max) {
  return read_frame([max](reader<connection>& in) { return in.read_line(max); });
}

task<result<std::string_view>> connection::read_until(std::string_view delimiter, std::size_t max) {
  return read_frame([delimiter, max](reader<connection>& in) { return in.read_until(delimiter, max); });
}

void connection::begin_request() {
  if (!request_deadline_) request_deadline_ = deadline_after(server_.options.limit.request_timeout);
}

result<std::vector<endpoint>> listen_endpoints(const server_options& options) {
  if (!options.unix_path.empty()) {
    auto where = endpoint::unix_path(options.unix_path);
    if (!where) return where.error();
    return std::vector<endpoint>{*where};
  }
  return resolve(options.host, options.port);
}

void print_listening(const endpoint& where, std::string_view transport) {
  const auto backend = to_string(runtime::current().backend());
  if (where.is_unix()) {
    notice("listening on {} (backend {})", where, backend);
  } else {
    notice("listening on {} ({}, backend {})", where, transport, backend);
  }
}

task<int> serve_stream(server_state& server, session_fn session) {
  if (const unsigned workers = workers_wanted(server); workers > 1) {
    co_return co_await supervise_workers<listener>(server, workers, "tcp");
  }
  auto bound = bind_every_address<listener>(server);
  if (!bound) co_return 1;
  std::vector<listener>& listeners = *bound;
  limits& limit = server.options.limit;
  if (limit.max_connections == 0) limit.max_connections = default_max_connections(server.fds_per_connection);
  if (limit.max_connections_per_source == 0) {
    limit.max_connections_per_source = std::clamp<std::size_t>(limit.max_connections / 4, 1, 256);
  }

  // Signals are taken over before the first "listening" line, so that a
  // script that stops the server as soon as it reads that line is honoured.
  signal_set signals = server_signals();
  spare_descriptor spare;
  // A worker's supervisor has said where it listens.
  if (!detail::this_worker()) {
    for (const listener& l : listeners) print_listening(l.local(), "tcp");
  }
  log_without_blocking(server);

  task_group acceptors;
  task_group connections;
  source_counts per_source(server.options.limit.max_connections_per_source);
  admission admit(server, session, connections, per_source);
  for (listener& l : listeners) {
    acceptors.spawn(accept_loop(l, server, admit, spare),
                    fmt::format("{} accept loop on {}", server.service, l.local()));
  }

  co_await wait_for_stop(signals, server, "no longer accepting; draining connections");
  acceptors.cancel();
  co_await acceptors.join();
  for (listener& l : listeners) admit_waiting(l, server, admit);
  listeners.clear();  // closes the sockets and removes a Unix path

  task_group watchers;
  watchers.spawn(exit_on_second_signal(signals, server), "signal watcher");
  auto drain = connections.join();
  // 0 means no limit, as for every timeout (with_timeout(0) would expire at once).
  if (server.options.limit.drain_timeout.count() > 0) drain.limit_for(server.options.limit.drain_timeout);
  const bool drained = co_await drain;
  if (!drained) {
    notice("{}: drain timeout: cancelling {} connections", server.service, connections.size());
    connections.cancel();
    co_await connections.join();
  }
  watchers.cancel();
  co_await watchers.join();
  print_stats(server);
  co_return 0;
}

task<int> serve_datagram(server_state& server, datagram_fn serve) {
  if (const unsigned workers = workers_wanted(server); workers > 1) {
    co_return co_await supervise_workers<datagram_socket>(server, workers, "udp");
  }
  auto bound = bind_every_address<datagram_socket>(server);
  if (!bound) co_return 1;
  std::vector<datagram_socket>& sockets = *bound;
  signal_set signals = server_signals();
  if (!detail::this_worker()) {
    for (const datagram_socket& s : sockets) print_listening(s.local(), "udp");
  }
  log_without_blocking(server);

  task_group workers;
  for (datagram_socket& s : sockets) {
    workers.spawn(serve(s, server), fmt::format("{} on {}", server.service, s.local()));
  }
  co_await wait_for_stop(signals, server, "stopping");
  workers.cancel();
  co_await workers.join();
  print_stats(server);
  co_return 0;
}

task<void> datagram_request::reply(std::span<const std::byte> bytes) {
  if (auto sent = co_await socket_.send_to(bytes, from_)) server_.stats.bytes_out += *sent;
}

namespace {

task<void> handle_each_datagram(datagram_socket& socket, server_state& server, datagram_guard& guard,
                                std::size_t max_payload, const request_fn& handle) {
  log_limiter error_log;
  // One byte more than the largest payload, so that a larger datagram shows as truncated.
  std::vector<std::byte> buf(max_payload + 1);
  for (;;) {
    auto got = co_await socket.receive_from(buf);
    if (!got) {
      if (got.error() == std::errc::operation_canceled) co_return;
      if (std::uint64_t skipped = 0; error_log.allow(skipped)) {
        log("{}: receive on {}: {} ({} more)", server.service, socket.local(), got.error().message(),
            skipped);
      }
      co_await sleep_for(10ms);  // a persistent error must not spin the loop
      continue;
    }
    server.stats.bytes_in += got->size;
    if (got->truncated || got->size > max_payload || !guard.allow(got->from)) {
      ++server.stats.dropped;
      continue;
    }
    datagram_request request(socket, server, got->from, std::span(buf).first(got->size));
    co_await handle(request);
  }
}

}  // namespace

task<int> serve_each_datagram(server_state& server, std::size_t max_payload, request_fn handle) {
  // One guard for every socket: its global rate is the service's.
  datagram_guard guard({.per_source_rate = server.options.limit.udp_rate});
  // Built apart from the co_await: g++ 12 mishandles a capturing lambda inside one.
  const datagram_fn each_socket = [&](datagram_socket& socket, server_state& state) {
    return handle_each_datagram(socket, state, guard, max_payload, handle);
  };
  co_return co_await serve_datagram(server, each_socket);
}

}  // namespace switchboard
