// The files service over UDP, both sides (files.hpp describes the protocol).
#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <memory>
#include <random>
#include <unordered_map>

#include <switchboard/cancel.hpp>
#include <switchboard/time.hpp>

#include "../common/datagram_guard.hpp"
#include "../common/log.hpp"
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
// Files hashed at once in the background.
constexpr std::size_t max_hashing = 2;

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
  std::optional<digest> sha256;
  clock::time_point last_active;

  std::uint64_t chunks() const { return chunk_count(identity.size, start, udp::chunk_size); }
};

// Hashes one file version into the cache while the socket goes on serving.
task<void> hash_into_cache(unique_fd file, file_identity id, digest_cache& cache,
                           std::vector<file_identity>& hashing) {
  auto sha256 = co_await hash_file(file.get(), id.size);
  if (sha256) {
    cache.store(id, *sha256);
  } else if (sha256.error() != std::errc::operation_canceled) {
    log("files: cannot hash a file being served over UDP: {}", sha256.error().message());
  }
  std::erase(hashing, id);
}

// The transfers and replies of one bound socket. Handlers run one at a time
// (the receive loop awaits each), so they share the reply buffers.
class udp_server {
 public:
  udp_server(datagram_socket& socket, server_state& server, server_context& context,
             task_group& hashers)
      : socket_(socket),
        server_(server),
        context_(context),
        hashers_(hashers),
        guard_({.per_source_rate = server.options.limit.udp_rate,
                .per_source_burst = 2 * udp::window}) {}

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
        transfers_.erase(it);
      }
    }
  }

 private:
  task<void> start(const udp::open_transfer& request, const endpoint& from) {
    forget_idle();
    // A repeated open (its ready was lost) gets the same answer again.
    for (auto& [id, t] : transfers_) {
      if (t.peer == from && t.nonce == request.nonce) {
        t.last_active = clock::now();
        co_await send(udp::ready{t.nonce, status::ok, t.id, t.identity.size, udp::chunk_size}, from);
        co_return;
      }
    }
    opened_file file = open_requested(request.name);
    const std::string what = request.name.empty() ? context_.config.file
                                                  : fmt::format("{:?}", request.name.substr(0, 80));
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
    if (transfers_.size() >= max_transfers) forget_oldest();
    transfer t;
    t.id = random_u64();
    t.nonce = request.nonce;
    t.peer = from;
    t.file = std::move(file.fd);
    t.identity = file_identity::of(file.info);
    t.start = request.offset;
    t.last_active = clock::now();
    transfer& stored = transfers_.insert_or_assign(t.id, std::move(t)).first->second;
    start_hashing(stored);
    co_await send(udp::ready{stored.nonce, status::ok, stored.id, size, udp::chunk_size}, from);
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
    const std::uint64_t count = t.chunks();
    for (std::uint64_t bits = request.wanted; bits != 0; bits &= bits - 1) {
      const std::uint64_t seq = request.first + static_cast<unsigned>(std::countr_zero(bits));
      if (seq < request.first || seq > count) break;  // past the end marker, or wrapped
      if (seq == count) {
        start_hashing(t);
        if (t.sha256) co_await send(udp::end_of_file{t.id, t.identity.size, *t.sha256}, from);
        continue;
      }
      const std::uint64_t at = t.start + seq * udp::chunk_size;
      const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(udp::chunk_size, t.identity.size - at));
      const ssize_t n = ::pread(t.file.get(), payload_.data(), want, static_cast<off_t>(at));
      if (n <= 0) continue;  // the file shrank: the digest will not match either
      co_await send(udp::chunk{t.id, seq, std::span(payload_).first(static_cast<std::size_t>(n))}, from);
    }
  }

  // Every datagram spends a token of the guard: the transfer's handshake
  // already keeps data away from forged addresses, so this caps bandwidth.
  task<void> send(const udp::packet& p, const endpoint& to) {
    if (!guard_.allow(to)) co_return;
    udp::encode(p, reply_);
    if (auto sent = co_await socket_.send_to(reply_, to)) server_.stats.bytes_out += *sent;
  }

  void start_hashing(transfer& t) {
    if (t.sha256) return;
    t.sha256 = context_.digests.find(t.identity);
    if (t.sha256 || hashing_.size() >= max_hashing ||
        std::find(hashing_.begin(), hashing_.end(), t.identity) != hashing_.end()) {
      return;
    }
    // The copy outlives the transfer if the transfer is forgotten meanwhile.
    unique_fd copy(::fcntl(t.file.get(), F_DUPFD_CLOEXEC, 0));
    if (!copy) return;
    hashing_.push_back(t.identity);
    hashers_.spawn(hash_into_cache(std::move(copy), t.identity, context_.digests, hashing_),
                   "files: hashing for udp");
  }

  void forget_idle() {
    const auto now = clock::now();
    std::erase_if(transfers_,
                  [&](const auto& entry) { return now - entry.second.last_active > transfer_idle_limit; });
  }

  void forget_oldest() {
    auto oldest = std::min_element(transfers_.begin(), transfers_.end(), [](const auto& a, const auto& b) {
      return a.second.last_active < b.second.last_active;
    });
    if (oldest != transfers_.end()) transfers_.erase(oldest);
  }

  datagram_socket& socket_;
  server_state& server_;
  server_context& context_;
  task_group& hashers_;
  datagram_guard guard_;
  std::unordered_map<std::uint64_t, transfer> transfers_;
  std::vector<file_identity> hashing_;
  std::array<std::byte, udp::chunk_size> payload_;
  std::vector<std::byte> reply_;
};

// ---- Client ----------------------------------------------------------------

struct udp_link {
  datagram_socket socket;
  endpoint server;
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
// the server answers (the client's --timeout bounds it all).
task<result<udp::ready>> open_transfer(udp_link& link, std::string_view name, std::uint64_t offset) {
  const udp::open_transfer request{random_u64(), offset, name};
  for (auto patience = clock::duration(250ms);; patience = std::min<clock::duration>(patience * 2, 2s)) {
    if (auto sent = co_await send_packet(link, request); !sent) co_return sent.error();
    const auto deadline = clock::now() + patience;
    for (;;) {
      auto p = co_await next_packet(link, deadline);
      if (!p) co_return p.error();
      if (!*p) break;
      if (auto* r = std::get_if<udp::ready>(&**p); r && r->nonce == request.nonce) co_return *r;
    }
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

enum class transfer_outcome { finished, reopen };

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

}  // namespace

task<void> serve_udp(datagram_socket& socket, server_state& server, server_context& context) {
  task_group hashers(co_await this_scope());
  udp_server handler(socket, server, context, hashers);
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
  hashers.cancel();
  co_await hashers.join();
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
