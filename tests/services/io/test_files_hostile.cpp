// The files service against clients that try to make it work for nothing:
// requests for huge files they do not wait for, crowds of hashes, forged UDP
// opens, floods of transfers, downloads that stall while holding
// descriptors, and a file that shrinks under a transfer. Each case watches
// the server's own counters (its SIGUSR1 line) and descriptors, never the
// clock, and checks that a normal client is served meanwhile.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <switchboard/cancel.hpp>
#include <switchboard/net.hpp>
#include <switchboard/time.hpp>

#include "../../support/files.hpp"
#include "../../support/plain.hpp"
#include "files/digest_service.hpp"
#include "files/protocol.hpp"

using namespace switchboard::testing;
namespace files = switchboard::services::files;
namespace protocol = files::protocol;
namespace udp = protocol::udp;
using protocol::status;

namespace {

constexpr long long one_tib = 1LL << 40;

std::string as_string(const std::vector<std::byte>& bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// A named request over a fresh connection, not waiting for the answer.
plain_socket ask_named(std::uint16_t port, std::string_view name) {
  plain_socket s = plain_socket::tcp(port);
  REQUIRE(s.send(as_string(protocol::encode_named_request(name, 0))));
  return s;
}

// The header a named request was answered with, if one came within `limit`.
std::optional<protocol::named_header> header_of(plain_socket& s, std::chrono::milliseconds limit = 10s) {
  const std::string all = s.until_closed(limit).bytes;
  if (all.size() < protocol::named_header_size) return std::nullopt;
  return protocol::decode_header(std::as_bytes(std::span(all.data(), protocol::named_header_size)));
}

// Waits until the server's counter `name` satisfies `wanted`; the last reading.
template <class Wanted>
std::uint64_t wait_for_stat(service_process& server, const std::string& name, Wanted wanted,
                            std::chrono::milliseconds limit = 10s) {
  const auto deadline = steady::now() + limit;
  for (;;) {
    const std::uint64_t value = server.stats()[name];
    if (wanted(value) || steady::now() > deadline) return value;
    std::this_thread::sleep_for(50ms);
  }
}

// One UDP client of the files service that speaks its protocol by hand.
class udp_peer {
 public:
  udp_peer(std::uint16_t server_port, const char* address = "127.0.0.1")
      : socket_(*plain_socket::udp(0, address)), server_port_(server_port) {}

  void send(const udp::packet& p) {
    std::vector<std::byte> bytes;
    udp::encode(p, bytes);
    socket_.send_to(as_string(bytes), server_port_);
  }

  // The next packet from the server, or nothing within `limit`. A chunk's
  // payload points into this peer until the next call.
  std::optional<udp::packet> next(std::chrono::milliseconds limit = 5s) {
    auto got = socket_.receive(limit);
    if (!got) return std::nullopt;
    last_ = std::move(*got);
    return udp::decode(std::as_bytes(std::span(last_.data(), last_.size())));
  }

  // Opens `name` the way files-client does: a retry brings the cookie, the
  // open goes again with it. The ready answer, if one came.
  std::optional<udp::ready> open(std::string_view name, std::uint64_t offset = 0) {
    const std::uint64_t nonce = ++nonces_;
    for (int attempt = 0; attempt < 3; ++attempt) {
      send(udp::open_transfer{nonce, offset, proof_, name});
      auto answer = next();
      if (!answer) return std::nullopt;
      if (auto* r = std::get_if<udp::ready>(&*answer)) return *r;
      if (auto* r = std::get_if<udp::retry>(&*answer)) proof_ = r->proof;
    }
    return std::nullopt;
  }

 private:
  plain_socket socket_;
  std::uint16_t server_port_;
  udp::cookie proof_{};
  std::uint64_t nonces_ = 0;
  std::string last_;
};

}  // namespace

TEST_CASE("200 clients that ask for a 1 TiB file share one hash, and hanging up stops it",
          "[io][files][hostile]") {
  temp_dir dir;
  make_sparse(dir.file("huge.bin"), one_tib);
  write_file(dir.file("small.txt"), "abc");
  service_process server("files", {"--root", dir.path()});
  REQUIRE(server.client("files-client", {"--name", "small.txt", "--output", dir.file("warm.out")}).status == 0);
  const std::size_t fds_before = open_fds(server.process.pid());
  const std::size_t rss_before = rss_kib(server.process.pid());

  CHECK(server.stats()["hashes-started"] == 1);  // small.txt's

  std::vector<plain_socket> askers;
  for (int i = 0; i < 200; ++i) askers.push_back(ask_named(server.port, "huge.bin"));
  CHECK(wait_for_stat(server, "hashes-started", [](auto n) { return n >= 2; }) == 2);
  auto busy = server.stats();
  CHECK(busy["hashes-running"] == 1);
  CHECK(busy["hashes-started"] == 2);  // one hash for the 200, not 200
  // A normal download goes on meanwhile.
  auto served = server.client("files-client", {"--name", "small.txt", "--output", dir.file("a.out")});
  INFO(served.err);
  CHECK(served.status == 0);

  askers.clear();  // every client hangs up at once
  CHECK(wait_for_stat(server, "hashes-running", [](auto n) { return n == 0; }) == 0);
  auto after = server.stats();
  CHECK(after["hashes-cancelled"] == 1);
  CHECK(after["hashes-finished"] == 1);  // small.txt only
  CHECK(fds_back_to(server.process.pid(), fds_before, 5s));
  if (rss_is_meaningful) CHECK(rss_kib(server.process.pid()) < rss_before + 32 * 1024);
  server.stop();
}

TEST_CASE("a client waits no longer than --hash-timeout for a digest, then hears busy",
          "[io][files][hostile]") {
  temp_dir dir;
  make_sparse(dir.file("huge.bin"), one_tib);
  SECTION("a named request") {
    service_process server("files", {"--root", dir.path(), "--hash-timeout", "0.5"});
    plain_socket patient = ask_named(server.port, "huge.bin");
    auto header = header_of(patient);  // the server answers, then closes
    REQUIRE(header);
    CHECK(header->code == status::busy);
    CHECK(wait_for_stat(server, "hashes-running", [](auto n) { return n == 0; }) == 0);
    CHECK(server.stats()["hashes-cancelled"] == 1);
    server.stop();
  }
  SECTION("a UDP transfer, from its open") {
    service_process server("files", {"--udp", "--root", dir.path(), "--hash-timeout", "0.5"});
    udp_peer client(server.port);
    const auto ready = client.open("huge.bin");
    REQUIRE(ready);
    REQUIRE(ready->code == status::ok);
    std::this_thread::sleep_for(1s);
    client.send(udp::get_chunks{ready->transfer, 0, 1});
    auto answer = client.next();
    REQUIRE(answer);
    const auto* failed = std::get_if<udp::transfer_failed>(&*answer);
    REQUIRE(failed);
    CHECK(failed->code == status::busy);
    CHECK(wait_for_stat(server, "hashes-running", [](auto n) { return n == 0; }) == 0);
    CHECK(server.stats()["hashes-cancelled"] == 1);
    server.stop();
  }
}

TEST_CASE("cycling through more files than the old cache held re-hashes none of them",
          "[io][files][hostile]") {
  temp_dir dir;
  constexpr int count = 100;
  for (int i = 0; i < count; ++i) write_file(dir.file("f" + std::to_string(i)), "file " + std::to_string(i));
  service_process server("files", {"--root", dir.path()});
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < count; ++i) {
      plain_socket s = ask_named(server.port, "f" + std::to_string(i));
      auto header = header_of(s);
      REQUIRE(header);
      REQUIRE(header->code == status::ok);
    }
  }
  CHECK(server.stats()["hashes-started"] == count);  // the second round came from the cache
  server.stop();
}

TEST_CASE("200 clients hashing 200 huge files: at most --max-hashes run, a small file is served",
          "[io][files][hostile]") {
  temp_dir dir;
  for (int i = 0; i < 200; ++i) make_sparse(dir.file("huge" + std::to_string(i)), one_tib);
  write_file(dir.file("small.txt"), "abc");
  write_file(dir.file("seed.txt"), "seed");
  service_process server("files", {"--root", dir.path(), "--file", dir.file("seed.txt")});
  const std::size_t rss_before = rss_kib(server.process.pid());
  std::vector<plain_socket> askers;
  for (int i = 0; i < 200; ++i) askers.push_back(ask_named(server.port, "huge" + std::to_string(i)));
  CHECK(wait_for_stat(server, "hashes-started", [](auto n) { return n == 200; }) == 200);
  auto crowded = server.stats();
  CHECK(crowded["hashes-running"] == 4);  // the default --max-hashes
  CHECK(crowded["hashes-queued"] == 196);

  // A file not hashed yet goes ahead of the big ones; the seed's protocol needs no hash.
  auto named = server.client("files-client", {"--name", "small.txt", "--output", dir.file("n.out"), "--timeout", "10"});
  INFO(named.err);
  CHECK(named.status == 0);
  auto seed = server.client("files-client", {"--output", dir.file("s.out"), "--timeout", "10"});
  CHECK(seed.status == 0);
  CHECK(server.stats()["hashes-running"] <= 4);
  if (rss_is_meaningful) CHECK(rss_kib(server.process.pid()) < rss_before + 32 * 1024);
  askers.clear();
  CHECK(wait_for_stat(server, "hashes-running", [](auto n) { return n == 0; }) == 0);
  CHECK(server.stats()["hashes-cancelled"] == 200);
  server.stop();
}

namespace {

// Polls the digest service's byte count once per loop turn (a zero sleep
// wakes once per turn) and returns the most bytes hashed between two turns.
switchboard::task<std::uint64_t> most_hashed_per_turn(const files::digest_service& digests, int turns) {
  std::uint64_t most = 0;
  std::uint64_t last = digests.totals().bytes;
  for (int i = 0; i < turns; ++i) {
    std::error_code ignored = co_await switchboard::sleep_for(std::chrono::nanoseconds(0));
    (void)ignored;
    most = std::max(most, digests.totals().bytes - last);
    last = digests.totals().bytes;
  }
  co_return most;
}

}  // namespace

TEST_CASE("however many files are hashed, a loop turn hashes at most one piece",
          "[io][files][hostile]") {
  temp_dir dir;
  std::vector<switchboard::unique_fd> opened;
  for (int i = 0; i < 50; ++i) {
    const std::string path = dir.file("big" + std::to_string(i));
    make_sparse(path, 1LL << 30);
    opened.emplace_back(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(opened.back());
  }
  run_async([&]() -> switchboard::task<void> {
    files::digest_service digests;
    switchboard::task_group hashing(co_await switchboard::this_scope());
    hashing.spawn(digests.run(), "hashing");
    {
      std::vector<files::digest_service::ticket> tickets;
      for (const auto& fd : opened) {
        struct stat info {};
        CHECK(::fstat(fd.get(), &info) == 0);  // no REQUIRE here: the hashing task must be joined
        tickets.push_back(digests.request(fd.get(), files::file_identity::of(info)));
      }
      CHECK(digests.running() == 4);
      CHECK(digests.queued() == 46);
      const std::uint64_t most = co_await most_hashed_per_turn(digests, 200);
      CHECK(most > 0);  // it does hash
      CHECK(most <= files::digest_service::piece_size);
    }  // the tickets go, and with them every job
    CHECK(digests.running() == 0);
    CHECK(digests.totals().cancelled == 50);
    hashing.cancel();
    co_await hashing.join();
  }());
}

TEST_CASE("forged UDP opens start no hash and open no file; a real download goes through",
          "[io][files][hostile][udp]") {
  temp_dir dir;
  make_sparse(dir.file("huge1.bin"), one_tib);
  make_sparse(dir.file("huge2.bin"), one_tib);
  write_file(dir.file("tiny.txt"), "abc");
  service_process server("files", {"--udp", "--root", dir.path()});
  const std::size_t fds_before = open_fds(server.process.pid());
  // Forged: sent from addresses that never read what comes back, as a
  // spoofer cannot, with a made-up cookie. (Its bytes are where the open
  // had its name before cookies: to such a server each names a huge file.)
  std::vector<plain_socket> forgers;
  for (const char* address : {"127.0.0.2", "127.0.0.3"}) forgers.push_back(*plain_socket::udp(0, address));
  std::vector<std::byte> bytes;
  for (int round = 0; round < 50; ++round) {
    for (std::size_t i = 0; i < forgers.size(); ++i) {
      const std::string made_up = std::string("\0\x09huge", 6) + std::to_string(i + 1) + ".bin";
      udp::open_transfer forged{static_cast<std::uint64_t>(round), 0, {}, "huge1.bin"};
      std::memcpy(forged.proof.data(), made_up.data(), made_up.size());
      udp::encode(forged, bytes);
      forgers[i].send_to(as_string(bytes), server.port);
    }
  }
  CHECK(wait_for_stat(server, "udp-retries", [](auto n) { return n >= 100; }) >= 100);
  auto after_forgery = server.stats();
  CHECK(after_forgery["hashes-started"] == 0);
  CHECK(after_forgery["udp-transfers"] == 0);
  CHECK(open_fds(server.process.pid()) <= fds_before);

  auto real = server.client("files-client", {"--udp", "--name", "tiny.txt", "--output", dir.file("t.out"), "--timeout", "10"});
  INFO(real.err);
  CHECK(real.status == 0);
  CHECK(real.out.find("verified") != std::string::npos);
  server.stop();
}

TEST_CASE("floods of UDP opens, forged or real, do not push out a client's only transfer",
          "[io][files][hostile][udp]") {
  temp_dir dir;
  make_sparse(dir.file("big.bin"), 64LL << 20);
  service_process server("files", {"--udp", "--file", dir.file("big.bin")});
  udp_peer client(server.port);
  const auto ready = client.open("");
  REQUIRE(ready);
  REQUIRE(ready->code == status::ok);
  std::uint64_t next_chunk = 0;
  // The client asks for one chunk now and then, as a slow link would, and
  // asks again when the answer does not come (a flood may fill the server's
  // receive queue).
  const auto client_still_served = [&] {
    for (int attempt = 0; attempt < 5; ++attempt) {
      client.send(udp::get_chunks{ready->transfer, next_chunk, 1});
      while (auto answer = client.next(1s)) {
        REQUIRE_FALSE(std::holds_alternative<udp::unknown_transfer>(*answer));
        if (const auto* c = std::get_if<udp::chunk>(&*answer); c && c->seq == next_chunk) {
          ++next_chunk;
          return;
        }
      }
    }
    FAIL("no answer to the client's get");
  };

  SECTION("forged opens from sources that never read") {
    std::vector<plain_socket> forgers;
    for (int i = 2; i < 10; ++i) forgers.push_back(*plain_socket::udp(0, ("127.0.0." + std::to_string(i)).c_str()));
    std::vector<std::byte> bytes;
    for (int round = 0; round < 12; ++round) {  // about 1,200 opens a second for 3 s
      // The get goes first: a burst may overflow the server's receive queue.
      client_still_served();
      for (int i = 0; i < 300; ++i) {
        udp::encode(udp::open_transfer{static_cast<std::uint64_t>(round * 1000 + i), 0, {}, ""}, bytes);
        forgers[static_cast<std::size_t>(i) % forgers.size()].send_to(as_string(bytes), server.port);
      }
      std::this_thread::sleep_for(250ms);
    }
    client_still_served();
    CHECK(server.stats()["udp-transfers"] == 1);
  }
  SECTION("real opens from eight addresses, 40 transfers each") {
    // 320 opens while the client is quiet: its transfer is the least
    // recently used of all, the first a plain LRU table would push out.
    std::vector<udp_peer> crowd;
    for (int i = 2; i < 10; ++i) crowd.emplace_back(server.port, ("127.0.0." + std::to_string(i)).c_str());
    for (int round = 0; round < 40; ++round) {
      for (udp_peer& peer : crowd) {
        auto opened = peer.open("");
        REQUIRE(opened);
        CHECK(opened->code == status::ok);
      }
    }
    client_still_served();
    auto counted = server.stats();
    CHECK(counted["udp-transfers"] == 256);
    CHECK(counted["udp-evicted"] == 8 * 40 + 1 - 256);
  }
  server.stop();
}

TEST_CASE("a file that shrinks under a UDP transfer ends it with 'changed' at once",
          "[io][files][hostile][udp]") {
  temp_dir dir;
  const std::string source = dir.file("source.bin");
  write_file(source, std::string(1 << 20, 'x'));
  service_process server("files", {"--udp", "--file", source});
  udp_peer client(server.port);
  const auto ready = client.open("");
  REQUIRE(ready);
  REQUIRE(ready->code == status::ok);
  client.send(udp::get_chunks{ready->transfer, 0, 1});
  auto first = client.next();
  REQUIRE(first);
  CHECK(std::holds_alternative<udp::chunk>(*first));

  REQUIRE(::truncate(source.c_str(), 1000) == 0);
  const auto failed = [&](std::uint64_t from) {
    client.send(udp::get_chunks{ready->transfer, from, 1});
    auto answer = client.next();
    REQUIRE(answer);
    const auto* f = std::get_if<udp::transfer_failed>(&*answer);
    REQUIRE(f);
    CHECK(f->code == status::changed);
  };
  failed(10);                           // a chunk past the new end
  failed(0);                            // every later get hears the same
  failed((1 << 20) / udp::chunk_size + 1);  // the end marker too
  auto counted = server.stats();
  CHECK(counted["hashes-started"] <= 1);  // no hash again per request
  const std::string err = server.process.err();
  CHECK(err.find("changed") == err.rfind("changed"));  // one log line for the transfer
  server.stop();
}

TEST_CASE("files-client says the file changed when it shrinks during a UDP download",
          "[io][files][hostile][udp]") {
  temp_dir dir;
  const std::string source = dir.file("source.bin");
  make_sparse(source, 2LL << 30);
  service_process server("files", {"--udp", "--file", source});
  const std::string out = dir.file("out.bin");
  child_process client({program(), "files-client", "--udp", "--port", std::to_string(server.port), "--output",
                        out, "--timeout", "20", "--backend", backend_name()});
  const auto give_up = steady::now() + 10s;
  while (file_size(out) < 100'000 && steady::now() < give_up) std::this_thread::sleep_for(1ms);
  REQUIRE(file_size(out) >= 100'000);
  REQUIRE(::truncate(source.c_str(), 50'000) == 0);
  CHECK(client.wait_exit(15s) == 1);
  const std::string err = client.err();
  INFO(err);
  CHECK(err.find("the file changed on the server") != std::string::npos);
  CHECK(err.find("timed out") == std::string::npos);
  server.stop();
}

TEST_CASE("with 256 fds, 150 stalled downloads leave no accepted client without its file",
          "[io][files][hostile][limits]") {
  temp_dir dir;
  write_file(dir.file("big.bin"), std::string(8 << 20, 'b'));
  // All from 127.0.0.1: its share of the slots is all of them here.
  child_process server({"prlimit", "--nofile=256:256", program(), "files", "--port", "0", "--backend",
                                backend_name(), "--file", dir.file("big.bin"), "--max-connections-per-source",
                                "1000"});
  const std::uint16_t port = server.wait_listening();
  REQUIRE(port != 0);
  const std::size_t fds_before = open_fds(server.pid());
  std::vector<plain_socket> stalled;
  const std::string request("0\0", 2);
  for (int i = 0; i < 150; ++i) {
    stalled.push_back(plain_socket::tcp(port));
    const int small = 4096;
    ::setsockopt(stalled.back().fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    REQUIRE(stalled.back().send(request));
  }
  // Each one either gets the start of the file or is closed at once, unserved.
  int with_data = 0;
  for (plain_socket& s : stalled) {
    REQUIRE(readable(s.fd(), 10s));
    char byte = 0;
    if (::recv(s.fd(), &byte, 1, MSG_PEEK) == 1) ++with_data;
  }
  server.signal(SIGUSR1);
  auto line = server.wait_for_line("stats:");
  REQUIRE(line);
  const std::size_t at = line->find("rejected ");
  REQUIRE(at != std::string::npos);
  const int rejected = std::stoi(line->substr(at + 9));
  INFO(*line);
  CHECK(with_data + rejected == 150);
  CHECK(with_data > 0);
  CHECK(server.err().find("Too many open files") == std::string::npos);
  stalled.clear();
  // The runtime may keep up to 16 spare splice pipes (io_uring) once downloads end.
  CHECK(fds_back_to(server.pid(), fds_before + 32, 10s));
  server.signal(SIGTERM);
  CHECK(server.wait_exit(15s) == 0);
}
