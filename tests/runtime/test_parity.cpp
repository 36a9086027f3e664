// The same primitive behaviour, over real loopback sockets, on every backend
// (this program runs once per backend: meson test --suite select|epoll|uring).
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <string>
#include <vector>

#include <switchboard/cancel.hpp>
#include <switchboard/net.hpp>
#include <switchboard/runtime.hpp>
#include <switchboard/time.hpp>

#include "../support/async.hpp"
#include "../support/stream_pair.hpp"

using namespace switchboard;
using namespace std::chrono_literals;
using testing::make_pair;
using testing::run_async;

namespace {

endpoint loopback_any_port() { return *endpoint::ip("127.0.0.1", 0); }

// Closes with SO_LINGER {1, 0}: the peer gets RST instead of FIN.
void reset(stream& s) {
  const linger hard{1, 0};
  ::setsockopt(s.native_handle(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  s.close();
}

std::string text(std::span<const char> bytes) { return {bytes.begin(), bytes.end()}; }

}  // namespace

TEST_CASE("a read after the peer closes returns 0 bytes (EOF)", "[io]") {
  run_async([]() -> task<void> {
    auto pair = co_await make_pair();
    auto ok1 = co_await pair.client.write_all("last words");
    REQUIRE(ok1);
    pair.client.close();
    std::array<char, 64> buf;
    auto first = co_await pair.server.read_exact(std::span(buf).first(10));
    REQUIRE(first);
    CHECK(text(std::span(buf).first(*first)) == "last words");
    auto eof = co_await pair.server.read_some(buf);
    REQUIRE(eof);
    CHECK(*eof == 0);
  }());
}

TEST_CASE("EOF right behind data is seen after a short read", "[io]") {
  run_async([]() -> task<void> {
    auto pair = co_await make_pair();
    task_group writer;
    // Data and FIN both arrive while the server's read is parked: one
    // readiness report covers both, and the read returns only the data.
    writer.spawn([](stream& s) -> task<void> {
      co_await sleep_for(20ms);
      auto sent = co_await s.write_all("abc");
      REQUIRE(sent);
      s.close();
    }(pair.client));
    std::array<char, 64> buf;
    auto data = co_await pair.server.read_some(buf);
    REQUIRE(data);
    CHECK(*data == 3);
    auto eof = co_await with_timeout(2s, pair.server.read_some(buf));
    REQUIRE(eof);
    CHECK(*eof == 0);
    co_await writer.join();
  }());
}

TEST_CASE("zero-length reads and writes complete at once with 0", "[io]") {
  run_async([]() -> task<void> {
    auto pair = co_await make_pair();
    std::array<char, 1> buf;
    auto read = co_await pair.server.read_some(std::span(buf).first(0));
    REQUIRE(read);
    CHECK(*read == 0);
    auto written = co_await pair.client.write_all(std::string_view{});
    REQUIRE(written);
    CHECK(*written == 0);
  }());
}

TEST_CASE("a reset peer gives connection_reset", "[io]") {
  run_async([]() -> task<void> {
    auto pair = co_await make_pair();
    reset(pair.client);
    std::array<char, 64> buf;
    auto read = co_await pair.server.read_some(buf);
    REQUIRE_FALSE(read);
    CHECK(read.error() == std::errc::connection_reset);
  }());
}

TEST_CASE("writing to a reset peer fails without killing the process", "[io]") {
  run_async([]() -> task<void> {
    auto pair = co_await make_pair();
    reset(pair.client);
    co_await sleep_for(20ms);
    std::vector<char> big(1 << 20, 'x');
    auto written = co_await pair.server.write_all(std::string_view(big.data(), big.size()));
    REQUIRE_FALSE(written);
    CHECK((written.error() == std::errc::connection_reset ||
           written.error() == std::errc::broken_pipe));
  }());
}

TEST_CASE("connecting to a port nobody listens on is refused", "[io]") {
  run_async([]() -> task<void> {
    endpoint closed;
    {
      auto probe = listener::bind(loopback_any_port()).value();
      closed = probe.local();
    }
    auto refused = co_await connect(closed);
    REQUIRE_FALSE(refused);
    CHECK(refused.error() == std::errc::connection_refused);
  }());
}

TEST_CASE("a half-closed peer still receives what is written to it", "[io]") {
  run_async([]() -> task<void> {
    auto pair = co_await make_pair();
    auto ok2 = co_await pair.client.write_all("question");
    REQUIRE(ok2);
    REQUIRE(pair.client.shutdown_write());
    std::array<char, 64> buf;
    auto got = co_await pair.server.read_exact(std::span(buf).first(8));
    REQUIRE(got);
    auto eof = co_await pair.server.read_some(buf);
    REQUIRE(eof);
    CHECK(*eof == 0);
    auto ok3 = co_await pair.server.write_all("answer");
    REQUIRE(ok3);
    pair.server.close();
    auto answer = co_await pair.client.read_exact(std::span(buf).first(6));
    REQUIRE(answer);
    CHECK(text(std::span(buf).first(*answer)) == "answer");
  }());
}

TEST_CASE("a read with a deadline times out and the stream stays usable", "[io]") {
  run_async([]() -> task<void> {
    auto pair = co_await make_pair();
    std::array<char, 16> buf;
    const auto start = clock::now();
    auto late = co_await with_timeout(50ms, pair.server.read_some(buf));
    REQUIRE_FALSE(late);
    CHECK(late.error() == std::errc::timed_out);
    CHECK(clock::now() - start >= 45ms);
    auto ok4 = co_await pair.client.write_all("after");
    REQUIRE(ok4);
    auto got = co_await with_timeout(5s, pair.server.read_exact(std::span(buf).first(5)));
    REQUIRE(got);
    CHECK(text(std::span(buf).first(5)) == "after");
  }());
}

TEST_CASE("data that arrives is not lost to a timeout that expired with it", "[io]") {
  run_async([]() -> task<void> {
    auto pair = co_await make_pair();
    std::array<char, 16> buf;
    std::size_t received = 0;
    for (int i = 0; i < 50; ++i) {
      auto ok5 = co_await pair.client.write_all("x");
      REQUIRE(ok5);
      auto got = co_await with_timeout(1ms, pair.server.read_some(buf));
      if (got) received += *got;
    }
    while (received < 50) {
      auto got = co_await with_timeout(2s, pair.server.read_some(buf));
      REQUIRE(got);
      received += *got;
    }
    CHECK(received == 50);
  }());
}

TEST_CASE("an accept in flight is cancelled cleanly", "[io][cancel]") {
  run_async([]() -> task<void> {
    auto server = listener::bind(loopback_any_port()).value();
    cancel_scope scope(co_await this_scope());
    task_group waiting(&scope);
    std::error_code error;
    waiting.spawn([](listener& l, std::error_code& out) -> task<void> {
      auto got = co_await l.accept();
      if (!got) out = got.error();
    }(server, error));
    co_await sleep_for(10ms);
    scope.cancel();
    co_await waiting.join();
    CHECK(error == std::errc::operation_canceled);
  }());
}

TEST_CASE("UDP datagrams go back and forth whole, empty ones included", "[io][udp]") {
  run_async([]() -> task<void> {
    auto server = datagram_socket::bind(loopback_any_port()).value();
    auto client = datagram_socket::bind(loopback_any_port()).value();
    std::vector<std::byte> big(65'507, std::byte{7});
    std::vector<std::byte> buf(70'000);
    for (std::size_t size : {std::size_t{0}, std::size_t{1}, big.size()}) {
      auto sent = co_await client.send_to(std::span(big).first(size), server.local());
      REQUIRE(sent);
      CHECK(*sent == size);
      auto got = co_await with_timeout(2s, server.receive_from(buf));
      REQUIRE(got);
      CHECK(got->size == size);
      CHECK_FALSE(got->truncated);
      CHECK(got->from == client.local());
    }
  }());
}

TEST_CASE("a datagram larger than the buffer is reported truncated", "[io][udp]") {
  run_async([]() -> task<void> {
    auto server = datagram_socket::bind(loopback_any_port()).value();
    auto client = datagram_socket::bind(loopback_any_port()).value();
    std::vector<std::byte> payload(100, std::byte{1});
    auto ok6 = co_await client.send_to(payload, server.local());
    REQUIRE(ok6);
    std::array<std::byte, 10> small;
    auto got = co_await with_timeout(2s, server.receive_from(small));
    REQUIRE(got);
    CHECK(got->size == 10);
    CHECK(got->truncated);
  }());
}

TEST_CASE("a Unix-domain stream carries bytes and its path goes with the listener", "[io][unix]") {
  testing::temp_dir dir;
  const std::string path = dir.file("echo.sock");
  run_async([](std::string path) -> task<void> {
    {
      auto server = listener::bind(endpoint::unix_path(path).value()).value();
      CHECK(server.local().to_string() == "unix:" + path);
      auto client = co_await connect(server.local());
      REQUIRE(client);
      auto accepted = co_await server.accept();
      REQUIRE(accepted);
      CHECK(accepted->peer().to_string() == "unix");
      auto ok7 = co_await client->write_all("ping");
      REQUIRE(ok7);
      std::array<char, 4> buf;
      auto ok8 = co_await accepted->read_exact(buf);
      REQUIRE(ok8);
      CHECK(text(buf) == "ping");
      CHECK(::access(path.c_str(), F_OK) == 0);
    }
    CHECK(::access(path.c_str(), F_OK) != 0);
  }(path));
}

TEST_CASE("a stale Unix socket file is replaced, a live one is not", "[io][unix]") {
  testing::temp_dir dir;
  const std::string path = dir.file("stale.sock");
  {
    // A socket file left behind by a process that died: bound, never unlinked.
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    const endpoint where = endpoint::unix_path(path).value();
    REQUIRE(::bind(fd, where.native(), where.native_size()) == 0);
    ::close(fd);
  }
  run_async([](std::string path) -> task<void> {
    auto first = listener::bind(endpoint::unix_path(path).value());
    REQUIRE(first);
    auto second = listener::bind(endpoint::unix_path(path).value());
    REQUIRE_FALSE(second);
    CHECK(second.error() == std::errc::address_in_use);
    co_return;
  }(path));
}

TEST_CASE("a path that is a regular file, a FIFO or a symlink is never taken for a stale socket",
          "[io][unix]") {
  testing::temp_dir dir;
  const std::string file = dir.file("data.txt");
  {
    std::FILE* out = std::fopen(file.c_str(), "w");
    REQUIRE(out);
    std::fputs("precious\n", out);
    std::fclose(out);
  }
  const std::string fifo = dir.file("queue.fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const std::string link = dir.file("link.sock");
  REQUIRE(::symlink(file.c_str(), link.c_str()) == 0);
  // A link to a socket file left behind is somebody's link all the same.
  const std::string stale = dir.file("stale.sock");
  {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    const endpoint where = endpoint::unix_path(stale).value();
    REQUIRE(::bind(fd, where.native(), where.native_size()) == 0);
    ::close(fd);
  }
  const std::string link_to_stale = dir.file("link-to-stale.sock");
  REQUIRE(::symlink(stale.c_str(), link_to_stale.c_str()) == 0);

  run_async([](std::vector<std::string> paths) -> task<void> {
    for (const std::string& path : paths) {
      INFO(path);
      struct stat before {};
      REQUIRE(::lstat(path.c_str(), &before) == 0);
      {
        auto taken = listener::bind(endpoint::unix_path(path).value());
        REQUIRE_FALSE(taken);
        CHECK(taken.error() == std::errc::address_in_use);
      }
      // Still there, and still the same thing, after the listener is gone.
      struct stat after {};
      REQUIRE(::lstat(path.c_str(), &after) == 0);
      CHECK(after.st_ino == before.st_ino);
      CHECK((after.st_mode & S_IFMT) == (before.st_mode & S_IFMT));
    }
    co_return;
  }({file, fifo, link, link_to_stale}));

  std::FILE* in = std::fopen(file.c_str(), "r");
  REQUIRE(in);
  char line[16] = {};
  CHECK(std::fgets(line, sizeof line, in) == std::string("precious\n"));
  std::fclose(in);
}

TEST_CASE("IPv6 loopback works where the machine has it", "[io][ipv6]") {
  auto v6 = endpoint::ip("::1", 0);
  const int probe = ::socket(AF_INET6, SOCK_STREAM, 0);
  const bool available = probe >= 0 && ::bind(probe, v6->native(), v6->native_size()) == 0;
  if (probe >= 0) ::close(probe);
  if (!available) return;
  run_async([]() -> task<void> {
    auto server = listener::bind(*endpoint::ip("::1", 0)).value();
    CHECK(server.local().to_string().rfind("[::1]:", 0) == 0);
    auto client = co_await connect("::1", server.local().port());
    REQUIRE(client);
    auto accepted = co_await server.accept();
    REQUIRE(accepted);
  }());
}

TEST_CASE("waiting for stdin-like descriptors works on pipes and regular files", "[io][poll]") {
  run_async([]() -> task<void> {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    auto late = co_await with_timeout(20ms, wait_ready(fds[0], POLLIN));
    REQUIRE_FALSE(late);
    CHECK(late.error() == std::errc::timed_out);
    REQUIRE(::write(fds[1], "x", 1) == 1);
    auto ready = co_await with_timeout(2s, wait_ready(fds[0], POLLIN));
    REQUIRE(ready);
    CHECK((*ready & POLLIN) != 0);
    unique_fd reader(fds[0]);
    unique_fd writer(fds[1]);
    unique_fd file(::open("/proc/self/status", O_RDONLY));
    auto file_ready = co_await with_timeout(2s, wait_ready(file.get(), POLLIN));
    REQUIRE(file_ready);
    unique_fd null(::open("/dev/null", O_RDONLY));
    auto null_ready = co_await with_timeout(2s, wait_ready(null.get(), POLLIN));
    REQUIRE(null_ready);
  }());
}

TEST_CASE("send_file streams a file range without copying, and stops at its end", "[io][sendfile]") {
  testing::temp_dir dir;
  const std::string path = dir.file("data.bin");
  std::string content(3 * 1024 * 1024 + 17, '\0');
  for (std::size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(i * 31 + i / 7);
  {
    FILE* f = std::fopen(path.c_str(), "wb");
    std::fwrite(content.data(), 1, content.size(), f);
    std::fclose(f);
  }
  run_async([](std::string path, std::string content) -> task<void> {
    auto pair = co_await make_pair();
    unique_fd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(file);
    constexpr std::int64_t offset = 1000;
    std::string received;
    task_group reader;
    reader.spawn([](stream& s, std::string& out) -> task<void> {
      std::array<char, 65536> buf;
      for (;;) {
        auto n = co_await s.read_some(buf);
        if (!n || *n == 0) co_return;
        out.append(buf.data(), *n);
      }
    }(pair.client, received));
    // Asks for more than is left: the answer is what the file had.
    auto sent = co_await pair.server.send_file(file.get(), offset, content.size());
    REQUIRE(sent);
    CHECK(*sent == content.size() - offset);
    pair.server.close();
    co_await reader.join();
    CHECK(received.size() == content.size() - offset);
    CHECK(received == content.substr(offset));
  }(path, content));
}

TEST_CASE("receive lends a runtime buffer once data arrives, and EOF is empty", "[io][receive]") {
  run_async([]() -> task<void> {
    auto pair = co_await make_pair();
    // More round trips than the io_uring ring has chunks: chunks must come back.
    for (int i = 0; i < 3000; ++i) {
      const std::string message = "message " + std::to_string(i);
      auto sent = co_await pair.client.write_all(message);
      REQUIRE(sent);
      std::string got;
      while (got.size() < message.size()) {
        auto chunk = co_await with_timeout(2s, pair.server.receive());
        REQUIRE(chunk);
        REQUIRE_FALSE(chunk->empty());
        got.append(reinterpret_cast<const char*>(chunk->bytes().data()), chunk->size());
      }
      REQUIRE(got == message);
    }
    pair.client.close();
    auto eof = co_await with_timeout(2s, pair.server.receive());
    REQUIRE(eof);
    CHECK(eof->empty());
  }());
}

TEST_CASE("receives that outnumber the buffers wait for one to come back", "[io][receive]") {
  run_async([]() -> task<void> {
    auto server = listener::bind(loopback_any_port()).value();
    constexpr int count = 1100;  // more than the io_uring ring's 1024 chunks
    std::vector<stream> clients;
    std::vector<stream> accepted;
    for (int i = 0; i < count; ++i) {
      auto c = co_await connect(server.local());
      REQUIRE(c);
      auto a = co_await server.accept();
      REQUIRE(a);
      clients.push_back(std::move(*c));
      accepted.push_back(std::move(*a));
    }
    std::vector<buffer> held;
    int received = 0;
    task_group receivers;
    for (stream& s : accepted) {
      receivers.spawn([](stream& s, std::vector<buffer>& held, int& received) -> task<void> {
        auto chunk = co_await s.receive();
        REQUIRE(chunk);
        REQUIRE(chunk->size() == 1);
        ++received;
        held.push_back(std::move(*chunk));
      }(s, held, received));
    }
    for (stream& c : clients) {
      auto sent = co_await c.write_all("x");
      REQUIRE(sent);
    }
    // Everyone gets a byte once the held buffers are given back.
    while (received < count) {
      co_await sleep_for(20ms);
      held.clear();
    }
    co_await receivers.join();
    CHECK(received == count);
  }());
}

TEST_CASE("TCP_NODELAY and SO_KEEPALIVE are set on a TCP stream, and a Unix stream refuses TCP_NODELAY",
          "[io][options]") {
  run_async([]() -> task<void> {
    auto pair = co_await make_pair();
    REQUIRE(pair.server.set_no_delay());
    REQUIRE(pair.server.set_keep_alive());
    int value = 0;
    socklen_t size = sizeof value;
    REQUIRE(::getsockopt(pair.server.native_handle(), IPPROTO_TCP, TCP_NODELAY, &value, &size) == 0);
    CHECK(value == 1);
    REQUIRE(::getsockopt(pair.server.native_handle(), SOL_SOCKET, SO_KEEPALIVE, &value, &size) == 0);
    CHECK(value == 1);
    REQUIRE(pair.server.set_no_delay(false));
    REQUIRE(::getsockopt(pair.server.native_handle(), IPPROTO_TCP, TCP_NODELAY, &value, &size) == 0);
    CHECK(value == 0);

    tools::temp_dir dir;
    auto where = endpoint::unix_path(dir.file("s.sock")).value();
    auto server = listener::bind(where).value();
    auto client = co_await connect(where);
    REQUIRE(client);
    CHECK_FALSE(client->set_no_delay());
  }());
}
