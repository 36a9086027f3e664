// The files service over UDP, both sides (files.hpp describes the protocol).
#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <memory>
#include <random>
#include <unordered_map>

#include <switchboard/time.hpp>

#include <switchboard/datagram_guard.hpp>
#include <switchboard/log.hpp>
#include <switchboard/source_key.hpp>
#include "file_access.hpp"
#include "udp.hpp"

namespace switchboard::services::files {
namespace {

using namespace std::chrono_literals;
using protocol::status;
namespace udp = protocol::udp;

// Transfers one socket keeps at once, and how long an idle one is kept.
constexpr std::size_t max_transfers = 256;
constexpr auto transfer_idle_limit = 30s;

std::uint64_t random_u64() {
  std::uint64_t value = 0;
  if (::getrandom(&value, sizeof value, 0) != static_cast<ssize_t>(sizeof value)) {
    std::random_device device;
    value = (std::uint64_t{device()} << 32) | device();
  }
  return value;
}

std::uint64_t chunk_count(std::uint64_t size, std::uint64_t start, std::uint64_t chunk_bytes) {
  return (size - start + chunk_bytes - 1) / chunk_bytes;
}

// ---- Server ----------------------------------------------------------------

struct transfer {
  std::uint64_t id = 0;
  std::uint64_t nonce = 0;
  endpoint peer;  // the address that opened it: the only one that gets its chunks
  unique_fd file;
  file_identity identity;
  std::uint64_t start = 0;
  digest_service::ticket sha256;  // after `file`, which it reads through: it goes first
  // When the digest must be ready (--hash-timeout after the open), if it was not at once.
  std::optional<clock::time_point> hash_deadline;
  // Set once the transfer failed: every get is answered with it until the
  // transfer is forgotten, so that a lost answer is not the end of the story.
  std::optional<status> failure;
  clock::time_point last_active;

  std::uint64_t chunks() const { return chunk_count(identity.size, start, udp::chunk_size); }
};

// The transfers and replies of one bound socket. Handlers run one at a time
// (the receive loop awaits each), so they share the reply buffers.
class udp_server {
 public:
  udp_server(datagram_socket& socket, server_state& server, server_context& context)
      : socket_(socket),
        server_(server),
        context_(context),
        guard_({.per_source_rate = server.options.limit.udp_rate,
                .per_source_burst = 2 * udp::window}) {}
  ~udp_server() {
    while (!transfers_.empty()) forget(transfers_.begin());
  }
  udp_server(const udp_server&) = delete;
  udp_server& operator=(const udp_server&) = delete;

  task<void> handle(std::span<const std::byte> bytes, const endpoint& from) {
    auto packet = udp::decode(bytes);
    if (!packet) co_return;
    if (auto* opening = std::get_if<udp::open_transfer>(&*packet)) {
      co_await start(*opening, from);
    } else if (auto* getting = std::get_if<udp::get_chunks>(&*packet)) {
      co_await send_chunks(*getting, from);
    } else if (auto* closing = std::get_if<udp::close_transfer>(&*packet)) {
      if (auto it = transfers_.find(closing->transfer);
          it != transfers_.end() && it->second.peer == from) {
        forget(it);
      }
    }
  }

 private:
  using entry = std::unordered_map<std::uint64_t, transfer>::iterator;

  task<void> start(const udp::open_transfer& request, const endpoint& from) {
    // Nothing happens for an open without a cookie sent to its address: a
    // forged source never sees the cookie, so it never gets past here.
    if (!context_.cookies.valid(request.proof, from)) {
      ++context_.udp.retries;
      co_await send(udp::retry{request.nonce, context_.cookies.issue(from)}, from);
      co_return;
    }
    forget_idle();
    // A repeated open (its ready was lost) gets the same answer again.
    for (auto& [id, t] : transfers_) {
      if (t.peer == from && t.nonce == request.nonce && !t.failure) {
        t.last_active = clock::now();
        co_await send(udp::ready{t.nonce, status::ok, t.id, t.identity.size, udp::chunk_size}, from);
        co_return;
      }
    }
    opened_file file = open_requested(request.name);
    const std::string what = describe_name(request.name);
    if (file.code != status::ok) {
      log("files: udp {}: {}: {} ({})", from, what, protocol::describe(file.code), file.why);
      co_await send(udp::ready{request.nonce, file.code, 0, 0, 0}, from);
      co_return;
    }
    const auto size = static_cast<std::uint64_t>(file.info.st_size);
    if (request.offset > size) {
      log("files: udp {}: {}: offset {} is past the end ({} bytes)", from, what, request.offset, size);
      co_await send(udp::ready{request.nonce, status::offset_past_end, 0, size, 0}, from);
      co_return;
    }
    if (transfers_.size() >= max_transfers) make_room(from);
    transfer t;
    do t.id = random_u64();
    while (transfers_.contains(t.id));
    t.nonce = request.nonce;
    t.peer = from;
    t.file = std::move(file.fd);
    t.identity = file_identity::of(file.info);
    t.start = request.offset;
    t.last_active = clock::now();
    // Hashing starts now, so that the digest is ready when the last chunk is.
    t.sha256 = context_.digests.request(t.file.get(), t.identity);
    if (!t.sha256.ready() && context_.config.hash_timeout.count() > 0) {
      t.hash_deadline = t.last_active + context_.config.hash_timeout;
    }
    const std::uint64_t id = t.id;
    transfer& stored = transfers_.emplace(id, std::move(t)).first->second;
    ++per_source_[source_key::of(from)];
    ++context_.udp.transfers;
    co_await send(udp::ready{stored.nonce, status::ok, stored.id, size, udp::chunk_size}, from);
  }

  std::string describe_name(std::string_view name) const {
    return name.empty() ? context_.config.file : fmt::format("{:?}", name.substr(0, 80));
  }

  opened_file open_requested(std::string_view name) const {
    if (name.empty()) return open_served(context_.config.file);
    if (context_.root) return open_beneath(context_.root.get(), name);
    opened_file refused;
    refused.code = status::forbidden;
    refused.why = "named files need --root";
    return refused;
  }

  // Sends exactly the chunks the get asks for, and the end marker once the
  // digest is known (until then the client asks again).
  task<void> send_chunks(const udp::get_chunks& request, const endpoint& from) {
    auto it = transfers_.find(request.transfer);
    if (it == transfers_.end()) {
      co_await send(udp::unknown_transfer{request.transfer}, from);
      co_return;
    }
    transfer& t = it->second;  // stays put: handlers run one at a time
    if (t.peer != from) co_return;
    t.last_active = clock::now();
    if (t.failure) {
      co_await send(udp::transfer_failed{t.id, *t.failure}, from);
      co_return;
    }
    // As over TCP, a client waits no longer than --hash-timeout for the
    // digest; here the wait began with the open.
    if (t.hash_deadline && !t.sha256.ready() && t.last_active > *t.hash_deadline) {
      co_await fail(t, status::busy);
      co_return;
    }
    const std::uint64_t count = t.chunks();
    for (std::uint64_t bits = request.wanted; bits != 0; bits &= bits - 1) {
      const std::uint64_t seq = request.first + static_cast<unsigned>(std::countr_zero(bits));
      if (seq < request.first || seq > count) break;  // past the end marker, or wrapped
      if (seq == count) {
        if (auto code = end_marker_problem(t)) {
          co_await fail(t, *code);
          co_return;
        }
        if (t.sha256.ready()) {
          co_await send(udp::end_of_file{t.id, t.identity.size, *t.sha256.outcome()}, from);
        }
        continue;
      }
      const std::uint64_t at = t.start + seq * udp::chunk_size;
      const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(udp::chunk_size, t.identity.size - at));
      const ssize_t n = ::pread(t.file.get(), payload_.data(), want, static_cast<off_t>(at));
      if (n < 0 && errno == EINTR) continue;  // the client asks again
      if (n != static_cast<ssize_t>(want)) {
        // Short: the file shrank under the transfer. The client hears so at
        // once instead of asking for chunks that will never come.
        co_await fail(t, n < 0 ? status::unreadable : status::changed);
        co_return;
      }
      co_await send(udp::chunk{t.id, seq, std::span(payload_).first(want)}, from);
    }
  }

  // Why the end marker cannot be sent, if it cannot: the digest failed, or
  // the file changed since the transfer began.
  std::optional<status> end_marker_problem(const transfer& t) const {
    if (!t.sha256.ready()) return std::nullopt;  // not yet: the client asks again
    if (file_identity::now(t.file.get()) != t.identity) return status::changed;
    if (!t.sha256.outcome()) return status::unreadable;
    return std::nullopt;
  }

  // Ends a transfer on the server's side: its file and its claim on the
  // hash go now; the entry stays to answer the client's gets until forgotten.
  task<void> fail(transfer& t, status code) {
    log("files: udp {}: transfer {:016x}: {}", t.peer, t.id, protocol::describe(code));
    t.failure = code;
    t.sha256 = {};
    t.file.reset();
    co_await send(udp::transfer_failed{t.id, code}, t.peer);
  }

  // Every datagram spends a token of the guard: the transfer's handshake
  // already keeps data away from forged addresses, so this caps bandwidth.
  task<void> send(const udp::packet& p, const endpoint& to) {
    if (!guard_.allow(to)) co_return;
    udp::encode(p, reply_);
    if (auto sent = co_await socket_.send_to(reply_, to)) server_.stats.bytes_out += *sent;
  }

  void forget(entry it) {
    const source_key from = source_key::of(it->second.peer);
    if (--per_source_[from] == 0) per_source_.erase(from);
    --context_.udp.transfers;
    transfers_.erase(it);
  }

  void forget_idle() {
    const auto now = clock::now();
    for (auto it = transfers_.begin(); it != transfers_.end();) {
      auto next = std::next(it);
      if (now - it->second.last_active > transfer_idle_limit) forget(it);
      it = next;
    }
  }

  // The table is full (so not empty): the source holding the most transfers
  // (counting the newcomer's) gives up its least recently active one. A
  // client with one transfer loses it only when every source holds no more
  // than one, however fast others open.
  void make_room(const endpoint& newcomer) {
    const source_key incoming = source_key::of(newcomer);
    const auto share = [&](const transfer& t) {
      const source_key from = source_key::of(t.peer);
      return per_source_.at(from) + (from == incoming ? 1 : 0);
    };
    auto victim = transfers_.begin();
    std::size_t victim_share = share(victim->second);
    for (auto it = std::next(victim); it != transfers_.end(); ++it) {
      const std::size_t s = share(it->second);
      if (s > victim_share || (s == victim_share && it->second.last_active < victim->second.last_active)) {
        victim = it;
        victim_share = s;
      }
    }
    ++context_.udp.evicted;
    forget(victim);
  }

  datagram_socket& socket_;
  server_state& server_;
  server_context& context_;
  datagram_guard guard_;
  std::unordered_map<std::uint64_t, transfer> transfers_;
  // Whose share a transfer counts against when the table is full (source_key:
  // an IPv4 address or an IPv6 /64, never the port).
  std::unordered_map<source_key, std::size_t, source_key_hash> per_source_;
  std::array<std::byte, udp::chunk_size> payload_;
  std::vector<std::byte> reply_;
};

// ---- Client ----------------------------------------------------------------

struct udp_link {
  datagram_socket socket;
  endpoint server;
  udp::cookie proof{};  // the server's last cookie for this socket, kept for reopening
  std::array<std::byte, udp::max_packet_size + 1> buf{};
  std::vector<std::byte> request;
};

task<result<void>> send_packet(udp_link& link, const udp::packet& p) {
  udp::encode(p, link.request);
  auto sent = co_await link.socket.send_to(link.request, link.server);
  if (!sent) co_return sent.error();
  co_return result<void>{};
}

// The next packet from the server, or nullopt at `deadline`. A chunk's
// payload points into link.buf until the next call.
task<result<std::optional<udp::packet>>> next_packet(udp_link& link, clock::time_point deadline) {
  for (;;) {
    auto got = co_await with_deadline(deadline, link.socket.receive_from(link.buf));
    if (!got) {
      if (got.error() == std::errc::timed_out) co_return std::optional<udp::packet>{};
      // An ICMP port unreachable from an earlier send: the server may come back.
      if (got.error() == std::errc::connection_refused) continue;
      co_return got.error();
    }
    if (got->truncated || !(got->from == link.server)) continue;
    if (auto p = udp::decode(std::span(link.buf).first(got->size))) co_return std::optional(*p);
  }
}

// Opens a transfer from `offset`, asking again with growing patience until
// the server answers (the client's --timeout bounds it all). An open the
// server answers with a cookie is sent again at once with that cookie.
task<result<udp::ready>> open_transfer(udp_link& link, std::string_view name, std::uint64_t offset) {
  udp::open_transfer request{random_u64(), offset, link.proof, name};
  // A server that refuses the cookies it hands out (a client whose address
  // keeps changing) would otherwise keep this loop spinning.
  constexpr int max_cookies = 4;
  int cookies = 0;
  auto patience = clock::duration(250ms);
  for (;;) {
    if (auto sent = co_await send_packet(link, request); !sent) co_return sent.error();
    const auto deadline = clock::now() + patience;
    bool cookie_came = false;
    while (!cookie_came) {
      auto p = co_await next_packet(link, deadline);
      if (!p) co_return p.error();
      if (!*p) break;
      if (auto* r = std::get_if<udp::ready>(&**p); r && r->nonce == request.nonce) co_return *r;
      if (auto* r = std::get_if<udp::retry>(&**p); r && r->nonce == request.nonce) {
        if (++cookies > max_cookies) {
          log("files-client: the server keeps refusing its own cookies");
          co_return std::make_error_code(std::errc::protocol_error);
        }
        request.proof = link.proof = r->proof;
        cookie_came = true;
      }
    }
    if (!cookie_came) patience = std::min<clock::duration>(patience * 2, 2s);
  }
}

// The window of chunks a download has asked for and holds out of order.
struct receive_window {
  std::uint64_t start = 0;      // file offset of chunk 0
  std::uint64_t count = 0;      // data chunks; chunk `count` is the end marker
  std::uint64_t chunk_bytes = 0;
  std::uint64_t size = 0;
  std::uint64_t base = 0;       // the first chunk not yet written
  std::uint64_t held = 0;       // bit i: chunk base + i waits in `chunks`
  std::array<std::vector<std::byte>, udp::window> chunks;
  std::optional<udp::end_of_file> end;
  std::optional<status> failure;  // the server ended the transfer (transfer_failed)

  bool finished() const { return base == count && end.has_value(); }

  // The chunks (and end marker) of the window still missing, as get bits.
  std::uint64_t missing() const {
    const std::uint64_t span = std::min<std::uint64_t>(udp::window, count + 1 - base);
    std::uint64_t bits = span == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << span) - 1;
    bits &= ~held;
    if (end && count - base < span) bits &= ~(std::uint64_t{1} << (count - base));
    return bits;
  }

  std::size_t expected_size(std::uint64_t seq) const {
    return static_cast<std::size_t>(std::min(chunk_bytes, size - start - seq * chunk_bytes));
  }
};

enum class transfer_outcome { finished, reopen, failed };

// Keeps a chunk that is new and well-formed, then writes what has become
// contiguous. Returns whether the chunk was new.
result<bool> take_chunk(receive_window& w, const udp::chunk& c, int out, std::uint64_t& received) {
  if (c.seq < w.base || c.seq >= w.count || c.seq - w.base >= udp::window) return false;
  const std::uint64_t bit = std::uint64_t{1} << (c.seq - w.base);
  if ((w.held & bit) != 0 || c.payload.size() != w.expected_size(c.seq)) return false;
  w.chunks[c.seq % udp::window].assign(c.payload.begin(), c.payload.end());
  w.held |= bit;
  while ((w.held & 1) != 0) {
    const auto& bytes = w.chunks[w.base % udp::window];
    const auto at = static_cast<off_t>(w.start + w.base * w.chunk_bytes);
    if (::pwrite(out, bytes.data(), bytes.size(), at) != static_cast<ssize_t>(bytes.size())) {
      return errno_code(errno ? errno : EIO);
    }
    received += bytes.size();
    w.held >>= 1;
    ++w.base;
  }
  return true;
}

// Asks for the missing chunks of the window, gathers what comes until all of
// them arrived or the link stays quiet for the retransmission timeout, and
// again, until the whole transfer is written.
task<result<transfer_outcome>> receive_transfer(udp_link& link, receive_window& w,
                                                std::uint64_t transfer, int out,
                                                std::uint64_t& received) {
  auto timeout = clock::duration(100ms);
  std::optional<clock::duration> smoothed_rtt;
  while (!w.finished()) {
    const std::uint64_t asked_base = w.base;
    std::uint64_t asked = w.missing();
    if (auto sent = co_await send_packet(link, udp::get_chunks{transfer, asked_base, asked}); !sent) {
      co_return sent.error();
    }
    const auto sent_at = clock::now();
    bool progressed = false;
    auto deadline = sent_at + timeout;
    while (asked != 0) {
      auto p = co_await next_packet(link, deadline);
      if (!p) co_return p.error();
      if (!*p) break;
      std::uint64_t seq = 0;
      if (auto* c = std::get_if<udp::chunk>(&**p); c && c->transfer == transfer) {
        auto fresh = take_chunk(w, *c, out, received);
        if (!fresh) co_return fresh.error();
        if (!*fresh) continue;
        seq = c->seq;
      } else if (auto* e = std::get_if<udp::end_of_file>(&**p); e && e->transfer == transfer) {
        if (w.end) continue;
        w.end = *e;
        seq = w.count;
      } else if (auto* u = std::get_if<udp::unknown_transfer>(&**p); u && u->transfer == transfer) {
        co_return transfer_outcome::reopen;
      } else if (auto* f = std::get_if<udp::transfer_failed>(&**p); f && f->transfer == transfer) {
        w.failure = f->code;
        co_return transfer_outcome::failed;
      } else {
        continue;
      }
      if (!progressed) {
        const auto rtt = clock::now() - sent_at;
        smoothed_rtt = smoothed_rtt ? (*smoothed_rtt * 7 + rtt) / 8 : rtt;
      }
      progressed = true;
      if (seq >= asked_base && seq - asked_base < udp::window) asked &= ~(std::uint64_t{1} << (seq - asked_base));
      deadline = clock::now() + timeout;
    }
    if (progressed) {
      timeout = std::clamp<clock::duration>(*smoothed_rtt * 3, 5ms, 1s);
    } else {
      timeout = std::min<clock::duration>(timeout * 2, 2s);
    }
  }
  co_return transfer_outcome::finished;
}

// Says why the server ended a transfer, and what the user can do.
void log_failure(status code) {
  switch (code) {
    case status::changed:
      log("files-client: the file changed on the server during the download: download it again "
          "from the start, without --resume");
      break;
    case status::busy:
      log("files-client: the server is too busy to hash the file now: try again later with --resume");
      break;
    default:
      log("files-client: the server ended the transfer: {}", protocol::describe(code));
  }
}

}  // namespace

task<void> serve_udp(datagram_socket& socket, server_state& server, server_context& context) {
  udp_server handler(socket, server, context);
  // One byte more than the largest packet: anything larger arrives truncated and is dropped.
  std::array<std::byte, udp::max_packet_size + 1> buf;
  for (;;) {
    auto got = co_await socket.receive_from(buf);
    if (!got) {
      const auto error = got.error();
      if (error == std::errc::operation_canceled || error == std::errc::bad_file_descriptor) break;
      continue;  // an ICMP error for an earlier reply: not this datagram's fault
    }
    server.stats.bytes_in += got->size;
    if (got->truncated) continue;
    co_await handler.handle(std::span(buf).first(got->size), got->from);
  }
}

task<std::optional<udp_download_result>> udp_download(const client_options& options, int out,
                                                      std::uint64_t start) {
  auto addresses = resolve(options.host, options.port);
  if (!addresses || addresses->empty()) {
    log("files-client: {}: {}", options.host,
        addresses ? "no address" : addresses.error().message());
    co_return std::nullopt;
  }
  udp_link link;
  link.server = addresses->front();
  auto socket = datagram_socket::open(link.server.family());
  if (!socket) {
    log("files-client: udp socket: {}", socket.error().message());
    co_return std::nullopt;
  }
  link.socket = std::move(*socket);
  const std::string name = options.name.value_or("");
  udp_download_result outcome;
  // The server forgets idle transfers; each new open goes on from what is written.
  constexpr int max_opens = 20;
  for (int opens = 0; opens < max_opens; ++opens) {
    const std::uint64_t from = start + outcome.received;
    auto ready = co_await open_transfer(link, name, from);
    if (!ready) {
      log("files-client: udp: {}", ready.error().message());
      co_return std::nullopt;
    }
    if (ready->code == status::offset_past_end) {
      log("files-client: offset {} is past the end of the file ({} bytes)", from, ready->size);
      co_return std::nullopt;
    }
    if (ready->code != status::ok) {
      log("files-client: {}: {}", name.empty() ? "the server's file" : name, protocol::describe(ready->code));
      co_return std::nullopt;
    }
    if (ready->chunk_bytes == 0 || ready->chunk_bytes > udp::chunk_size) {
      log("files-client: the server offers chunks of {} bytes, which this client cannot take",
          ready->chunk_bytes);
      co_return std::nullopt;
    }
    receive_window window;
    window.start = from;
    window.size = ready->size;
    window.chunk_bytes = ready->chunk_bytes;
    window.count = chunk_count(ready->size, from, ready->chunk_bytes);
    auto done = co_await receive_transfer(link, window, ready->transfer, out, outcome.received);
    if (!done) {
      log("files-client: udp: {}", done.error().message());
      co_return std::nullopt;
    }
    if (*done == transfer_outcome::failed) {
      log_failure(*window.failure);
      co_return std::nullopt;
    }
    if (*done == transfer_outcome::finished) {
      (void)co_await send_packet(link, udp::close_transfer{ready->transfer});
      outcome.size = window.end->size;
      outcome.sha256 = window.end->sha256;
      co_return outcome;
    }
  }
  log("files-client: the server forgot the transfer {} times: giving up", max_opens);
  co_return std::nullopt;
}

}  // namespace switchboard::services::files
