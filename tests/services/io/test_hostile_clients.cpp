// Clients that mean harm, against servers on the backend under test: one
// source taking every connection slot or every game, forged UDP sources
// filling the datagram guard or aiming replies at one victim from many
// ports, extra bytes that would reset a download, a log pipe nobody reads,
// and SIGHUP. Many sources are stood in for by loopback addresses (127.x.y.z
// needs no privilege); each case ends with the server serving a normal
// client.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../../support/plain.hpp"
#include "files/protocol.hpp"

using namespace switchboard::testing;
namespace protocol = switchboard::services::files::protocol;

namespace {

// A descriptor this test owns.
class owned_fd {
 public:
  explicit owned_fd(int fd = -1) : fd_(fd) {}
  owned_fd(owned_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  owned_fd& operator=(owned_fd&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  ~owned_fd() { close(); }
  void close() {
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

sockaddr_in ipv4(const char* host, std::uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  REQUIRE(::inet_pton(AF_INET, host, &addr.sin_addr) == 1);
  return addr;
}

// A blocking TCP connection from `source` to 127.0.0.1:`port`; a receive
// buffer of `receive_buffer` bytes when given (set before connecting, so
// that the window stays that small).
owned_fd connect_from(const char* source, std::uint16_t port, int receive_buffer = 0) {
  owned_fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(s.get() >= 0);
  if (receive_buffer) ::setsockopt(s.get(), SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
  const sockaddr_in local = ipv4(source, 0);
  REQUIRE(::bind(s.get(), reinterpret_cast<const sockaddr*>(&local), sizeof local) == 0);
  const sockaddr_in server = ipv4("127.0.0.1", port);
  REQUIRE(::connect(s.get(), reinterpret_cast<const sockaddr*>(&server), sizeof server) == 0);
  return s;
}

// A UDP socket bound to `source`, any port.
owned_fd udp_from(const char* source) {
  owned_fd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  REQUIRE(s.get() >= 0);
  const sockaddr_in local = ipv4(source, 0);
  REQUIRE(::bind(s.get(), reinterpret_cast<const sockaddr*>(&local), sizeof local) == 0);
  return s;
}

void send_datagram(const owned_fd& s, std::string_view datagram, std::uint16_t port) {
  const sockaddr_in server = ipv4("127.0.0.1", port);
  REQUIRE(::sendto(s.get(), datagram.data(), datagram.size(), 0, reinterpret_cast<const sockaddr*>(&server),
                   sizeof server) == static_cast<ssize_t>(datagram.size()));
}

// Takes the replies that come to `sockets` until none has come for `quiet`.
std::size_t count_replies(const std::vector<owned_fd>& sockets, std::chrono::milliseconds quiet) {
  std::vector<pollfd> waiting;
  for (const owned_fd& s : sockets) waiting.push_back({s.get(), POLLIN, 0});
  std::size_t replies = 0;
  while (::poll(waiting.data(), waiting.size(), static_cast<int>(quiet.count())) > 0) {
    for (pollfd& p : waiting) {
      if (!(p.revents & POLLIN)) continue;
      char buf[2048];
      while (::recv(p.fd, buf, sizeof buf, MSG_DONTWAIT) >= 0) ++replies;
    }
  }
  return replies;
}

// Everything until the peer closes (EOF or reset) or `limit` passes without a byte.
struct drained {
  std::string bytes;
  bool reset = false;
};
drained read_until_closed(const owned_fd& s, std::chrono::milliseconds limit = 10s) {
  drained got;
  std::vector<char> buf(1 << 16);
  while (readable(s.get(), limit)) {
    const ssize_t n = ::recv(s.get(), buf.data(), buf.size(), 0);
    if (n < 0) got.reset = true;
    if (n <= 0) break;
    got.bytes.append(buf.data(), static_cast<std::size_t>(n));
  }
  return got;
}

// Bytes that differ from page to page and within each, so that a lost or
// misplaced piece shows.
std::string pattern(std::size_t size) {
  std::string bytes(size, '\0');
  for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>(i * 7 + i / 4096);
  return bytes;
}

void write_file(const std::string& path, std::string_view content) {
  std::ofstream(path, std::ios::binary).write(content.data(), static_cast<std::streamsize>(content.size()));
}

std::string as_text(const std::vector<std::byte>& bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// The statistics line the server prints on SIGUSR1 (the latest one).
std::string stats_of(service_process& server) {
  const std::size_t before = server.process.err().size();
  server.process.signal(SIGUSR1);
  const auto deadline = steady::now() + 5s;
  while (steady::now() < deadline) {
    const std::string err = server.process.err();
    if (const auto at = err.find("stats:", before); at != std::string::npos && err.find('\n', at) != std::string::npos) {
      return err.substr(at, err.find('\n', at) - at);
    }
    std::this_thread::sleep_for(10ms);
  }
  FAIL("no statistics line after SIGUSR1");
  return {};
}

// A server of ours whose stderr is a pipe that this test reads up to the
// "listening on" line and then leaves to fill up, as a stalled log reader
// would. The test keeps its own copy of the pipe's write end: the open file
// description the server inherits, whose flags must stay as they were.
struct stalled_log_server {
  owned_fd log;          // the read end
  owned_fd shared_end;   // the write end, as the parent holds it
  std::unique_ptr<child_process> process;
  std::uint16_t port = 0;

  stalled_log_server(const std::string& service, const std::vector<std::string>& extra) {
    int ends[2];
    REQUIRE(::pipe2(ends, O_CLOEXEC) == 0);
    log = owned_fd(ends[0]);
    shared_end = owned_fd(ends[1]);
    // The write end is inherited (no FD_CLOEXEC) for as long as the spawn takes.
    ::fcntl(shared_end.get(), F_SETFD, 0);
    const std::string fd = std::to_string(shared_end.get());
    std::vector<std::string> argv{"sh", "-c", "exec \"$@\" 2>&" + fd + " " + fd + ">&-", "sh",
                                  program(), service, "--port", "0", "--backend", backend_name()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    process = std::make_unique<child_process>(argv);
    ::fcntl(shared_end.get(), F_SETFD, FD_CLOEXEC);
    std::string text;
    const auto deadline = steady::now() + 10s;
    while (port == 0 && steady::now() < deadline) {
      text += read_now(200ms);
      const auto at = text.find("listening on 127.0.0.1:");
      if (at != std::string::npos && text.find(' ', at + 23) != std::string::npos) {
        port = static_cast<std::uint16_t>(std::stoi(text.substr(at + 23)));
      }
    }
    REQUIRE(port != 0);
  }

  // What the pipe holds now, waiting up to `limit` for the first byte.
  std::string read_now(std::chrono::milliseconds limit = 0ms) {
    std::string text;
    char buf[65536];
    while (readable(log.get(), text.empty() ? limit : 0ms)) {
      const ssize_t n = ::read(log.get(), buf, sizeof buf);
      if (n <= 0) break;
      text.append(buf, static_cast<std::size_t>(n));
    }
    return text;
  }
};

// The `n`th of many loopback addresses: 127.1.0.1, 127.1.0.2, ... (250 per /24).
std::string nth_loopback(std::size_t n) {
  return "127.1." + std::to_string(n / 250) + "." + std::to_string(n % 250 + 1);
}

}  // namespace

TEST_CASE("one address cannot take every connection slot: past its share its connections are closed at once",
          "[io][hostile][limits]") {
  // The default share: a quarter of --max-connections, at most 256.
  service_process server("echo", {"--max-connections", "2000", "--idle-timeout", "0"});
  const std::size_t baseline = open_fds(server.process.pid());
  std::vector<owned_fd> hoard;
  char buf[16];
  for (int i = 0; i < 256; ++i) hoard.push_back(connect_from("127.0.0.2", server.port));
  // Every one of them is served (the last one too, once the server got to it).
  REQUIRE(send_all(hoard.back().get(), "hi"));
  CHECK(::recv(hoard.back().get(), buf, 2, MSG_WAITALL) == 2);
  for (int i = 0; i < 10; ++i) {
    owned_fd extra = connect_from("127.0.0.2", server.port);
    (void)send_all(extra.get(), "hi");
    REQUIRE(readable(extra.get(), 5s));
    CHECK(::recv(extra.get(), buf, sizeof buf, 0) <= 0);  // EOF (or a reset), no echo
  }
  // Another address is served meanwhile.
  owned_fd other = connect_from("127.0.0.3", server.port);
  REQUIRE(send_all(other.get(), "hi"));
  CHECK(::recv(other.get(), buf, 2, MSG_WAITALL) == 2);
  CHECK(stats_of(server).find("open 257 total 257 rejected 10") != std::string::npos);
  CHECK(server.process.wait_for_line("--max-connections-per-source 256 reached by 127.0.0.2"));
  // Room frees up as the address lets go (once the server has seen it go).
  hoard.pop_back();
  bool served_again = false;
  for (const auto give_up = steady::now() + 5s; !served_again && steady::now() < give_up;) {
    owned_fd again = connect_from("127.0.0.2", server.port);
    served_again = send_all(again.get(), "hi") && ::recv(again.get(), buf, 2, MSG_WAITALL) == 2;
    if (!served_again) std::this_thread::sleep_for(50ms);
  }
  CHECK(served_again);
  hoard.clear();
  other.close();
  CHECK(fds_back_to(server.process.pid(), baseline, 5s));
  server.stop();
}

TEST_CASE("50 silent connections from one address leave room under --max-connections 50 for others",
          "[io][hostile][limits]") {
  service_process server("echo", {"--max-connections", "50", "--idle-timeout", "0"});
  std::vector<owned_fd> silent;
  for (int i = 0; i < 50; ++i) silent.push_back(connect_from("127.0.0.2", server.port));
  // A quarter of the slots is that address's share: 12 held, 38 closed at once.
  std::size_t closed = 0;
  char probe;
  for (const owned_fd& s : silent) closed += readable(s.get(), 200ms) && ::recv(s.get(), &probe, 1, 0) <= 0;
  CHECK(closed == 38);
  for (int i = 0; i < 5; ++i) {
    owned_fd other = connect_from(("127.0.0." + std::to_string(3 + i)).c_str(), server.port);
    REQUIRE(send_all(other.get(), "still room"));
    char buf[10];
    CHECK(::recv(other.get(), buf, sizeof buf, MSG_WAITALL) == 10);
  }
  CHECK(stats_of(server).find("rejected 38") != std::string::npos);
  server.stop();
}

TEST_CASE("Unix-domain clients are one local source that is never limited", "[io][hostile][limits][unix]") {
  temp_dir dir;
  const std::string path = dir.file("echo.sock");
  service_process server("echo", {"--unix", path, "--max-connections", "400", "--idle-timeout", "0"});
  std::vector<plain_socket> clients;
  for (int i = 0; i < 300; ++i) clients.push_back(plain_socket::unix_stream(path));
  REQUIRE(clients.back().send("hi"));
  char buf[2];
  CHECK(::recv(clients.back().fd(), buf, sizeof buf, MSG_WAITALL) == 2);
  clients.clear();
  server.stop();
}

TEST_CASE("a request followed by extra bytes still gets its whole download, then the close",
          "[io][hostile][files]") {
  temp_dir dir;
  const std::string content = pattern(4 * 1024 * 1024);
  write_file(dir.file("big.bin"), content);
  service_process server("files", {"--file", dir.file("big.bin"), "--root", dir.path()});
  // On io_uring a download leaves a pipe pair behind for the next one (its
  // sendfile is two splices): the baseline is taken with it in place.
  REQUIRE(server.client("files-client", {"--output", dir.file("first.bin")}).status == 0);
  const std::size_t baseline = open_fds(server.process.pid());
  const std::string seed_request("0\0", 2);
  const std::string named_request = as_text(protocol::encode_named_request("big.bin", 0));
  for (const std::string& request : {seed_request, named_request}) {
    INFO((request == seed_request ? "the seed's request" : "a named request"));
    // A small receive window keeps most of the file in the server's send
    // buffer when it finishes: a close with the extra bytes unread would
    // reset the connection and drop all of that.
    owned_fd client = connect_from("127.0.0.1", server.port, 16 * 1024);
    REQUIRE(send_all(client.get(), request + "and then some more bytes"));
    std::this_thread::sleep_for(300ms);  // the server has sent what the buffers take
    const drained got = read_until_closed(client);
    CHECK_FALSE(got.reset);
    const std::size_t header = request == seed_request ? 0 : protocol::named_header_size;
    REQUIRE(got.bytes.size() == header + content.size());
    CHECK(got.bytes.compare(header, content.size(), content) == 0);
  }
  CHECK(fds_back_to(server.process.pid(), baseline, 5s));
  server.stop();
}

TEST_CASE("lingering after a session ends at the client's EOF, at --linger-timeout, or after 64 KiB",
          "[io][hostile][files]") {
  temp_dir dir;
  write_file(dir.file("small.bin"), pattern(1000));
  SECTION("a client that reads its reply and never closes is closed at the linger timeout") {
    service_process server("daytime", {"--linger-timeout", "1"});
    const std::size_t baseline = open_fds(server.process.pid());
    owned_fd client = connect_from("127.0.0.1", server.port);
    REQUIRE(send_all(client.get(), "what time is it?\r\n"));
    const drained got = read_until_closed(client, 5s);  // the server's FIN comes at once
    CHECK(got.bytes.ends_with("-UTC\r\n"));
    CHECK_FALSE(got.reset);
    const auto eof = steady::now();
    CHECK(fds_back_to(server.process.pid(), baseline, 5s));
    const auto held = steady::now() - eof;
    CHECK(held >= 800ms);
    CHECK(held < 4s);
    server.stop();
  }
  SECTION("a client that keeps sending after its request is dropped after 64 KiB, long before the timeout") {
    service_process server("files", {"--file", dir.file("small.bin"), "--linger-timeout", "60"});
    REQUIRE(server.client("files-client", {"--output", dir.file("first.bin")}).status == 0);
    const std::size_t baseline = open_fds(server.process.pid());
    owned_fd client = connect_from("127.0.0.1", server.port);
    ::fcntl(client.get(), F_SETFL, O_NONBLOCK);
    REQUIRE(send_all(client.get(), std::string("0\0", 2)));
    const std::string junk(64 * 1024, 'j');
    std::size_t pushed = 0;
    const auto give_up = steady::now() + 10s;
    while (steady::now() < give_up && pushed < 64 * 1024 * 1024) {
      const ssize_t n = ::send(client.get(), junk.data(), junk.size(), MSG_NOSIGNAL);
      if (n > 0) pushed += static_cast<std::size_t>(n);
      if (n < 0 && errno != EAGAIN) break;  // the server has closed
      if (n < 0) {
        pollfd p{client.get(), POLLOUT, 0};
        ::poll(&p, 1, 100);
      }
    }
    CHECK(steady::now() < give_up);
    CHECK(fds_back_to(server.process.pid(), baseline, 5s));
    const std::string stats = stats_of(server);
    INFO(stats);
    // bytes-in: the 2-byte request, then at most 64 KiB and one more receive of 16 KiB.
    const auto at = stats.find("bytes-in ");
    REQUIRE(at != std::string::npos);
    CHECK(std::stoull(stats.substr(at + 9)) <= 2 + (64 + 16) * 1024);
    server.stop();
  }
}

TEST_CASE("SIGHUP stops a server cleanly: exit 0, and its Unix socket file is gone",
          "[io][hostile][signal]") {
  temp_dir dir;
  const std::string path = dir.file("echo.sock");
  service_process stream_server("echo", {"--unix", path});
  REQUIRE(::access(path.c_str(), F_OK) == 0);
  stream_server.process.signal(SIGHUP);
  CHECK(stream_server.process.wait_exit(10s) == 0);
  CHECK(::access(path.c_str(), F_OK) != 0);
  CHECK(stream_server.process.wait_for_line("Hangup"));

  service_process datagram_server("daytime", {"--udp"});
  datagram_server.process.signal(SIGHUP);
  CHECK(datagram_server.process.wait_exit(10s) == 0);
}

TEST_CASE("a server started to ignore SIGHUP (nohup) goes on ignoring it", "[io][hostile][signal]") {
  child_process server({"sh", "-c", "trap '' HUP; exec \"$@\"", "sh", program(), "echo", "--port", "0",
                        "--backend", backend_name()});
  const std::uint16_t port = server.wait_listening();
  REQUIRE(port != 0);
  server.signal(SIGHUP);
  CHECK_FALSE(server.wait_exit(500ms));
  auto echoed = run_command({program(), "echo-client", "--port", std::to_string(port), "--backend",
                             backend_name(), "--message", "still here"});
  CHECK(echoed.out == "still here");
  server.signal(SIGTERM);
  CHECK(server.wait_exit(10s) == 0);
}

TEST_CASE("ten addresses with many ports cannot take every UDP game from a newcomer",
          "[io][hostile][guess][udp]") {
  // Replies pass the guard unhindered here: the cap per host is under test.
  service_process server("guess", {"--udp", "--max", "1000000000000", "--max-games", "2000", "--udp-rate",
                                   "1000000"});
  std::size_t refused_for_host = 0;
  for (int host = 0; host < 10; ++host) {
    const std::string source = "127.0.2." + std::to_string(host + 1);
    // All of one address's ports open at once, so that none comes back as another game's.
    std::vector<owned_fd> ports;
    for (int i = 0; i < 200; ++i) {
      ports.push_back(udp_from(source.c_str()));
      send_datagram(ports.back(), "50", server.port);
      REQUIRE(readable(ports.back().get(), 5s));
      char reply[256];
      const ssize_t n = ::recv(ports.back().get(), reply, sizeof reply, 0);
      REQUIRE(n > 0);
      refused_for_host += std::string_view(reply, static_cast<std::size_t>(n)) ==
                          "error: too many games from your address, try again later\n";
    }
  }
  // 64 games per address (the default cap), the rest refused for their host.
  CHECK(refused_for_host == 10 * (200 - 64));
  {
    owned_fd newcomer = udp_from("127.0.0.1");
    send_datagram(newcomer, "50", server.port);
    REQUIRE(readable(newcomer.get(), 5s));
    char reply[256];
    const ssize_t n = ::recv(newcomer.get(), reply, sizeof reply, 0);
    REQUIRE(n > 0);
    const std::string answer(reply, static_cast<std::size_t>(n));
    CHECK((answer == "higher\n" || answer == "lower\n"));
  }
  CHECK(stats_of(server).find("open 641 total 641 rejected 1360") != std::string::npos);
  server.stop();
}

TEST_CASE("a flood of forged UDP sources that fills the guard's table does not lock real clients out",
          "[io][hostile][udp]") {
  // At one reply per second per source, no entry of the flood ages out
  // during the test: room for the real client must come from eviction.
  service_process server("daytime", {"--udp", "--udp-rate", "1"});
  constexpr std::size_t forged = 17'000;  // more than the table's 16,384 sources
  constexpr std::size_t batch = 250;
  std::size_t answered = 0;
  for (std::size_t first = 0; first < forged; first += batch) {
    std::vector<owned_fd> sources;
    for (std::size_t i = first; i < first + batch; ++i) {
      sources.push_back(udp_from(nth_loopback(i).c_str()));
      send_datagram(sources.back(), "", server.port);
    }
    // Paced by the replies, so that the server's receive buffer never overflows.
    answered += count_replies(sources, 100ms);
  }
  INFO(answered << " of " << forged << " forged sources were answered");
  CHECK(answered > forged * 9 / 10);
  auto real = server.client("daytime-client", {"--udp", "--timeout", "5"});
  INFO(real.err);
  CHECK(real.status == 0);
  CHECK(real.out.ends_with("-UTC\n"));
  server.stop();
}

TEST_CASE("replies to one address from 400 of its ports stay within one source's rate",
          "[io][hostile][udp]") {
  for (const char* service : {"daytime", "udp-echo"}) {
    INFO(service);
    std::vector<std::string> flags{"--udp-rate", "1"};
    if (std::string_view(service) == "daytime") flags.push_back("--udp");
    service_process server(service, flags);
    const auto start = steady::now();
    std::size_t replies = 0;
    for (int round = 0; round < 8; ++round) {
      std::vector<owned_fd> ports;
      for (int i = 0; i < 50; ++i) {
        ports.push_back(udp_from("127.0.0.9"));
        send_datagram(ports.back(), "x", server.port);
      }
      replies += count_replies(ports, 100ms);
    }
    const auto seconds = std::chrono::duration<double>(steady::now() - start).count();
    INFO(replies << " replies in " << seconds << " s");
    // The burst of 50, then one a second: not one burst per port.
    CHECK(replies >= 50);
    CHECK(replies <= 50 + static_cast<std::size_t>(seconds) + 2);
    // Another address is answered meanwhile.
    owned_fd other = udp_from("127.0.0.10");
    send_datagram(other, "x", server.port);
    CHECK(readable(other.get(), 5s));
    server.stop();
  }
}

TEST_CASE("a log pipe that nobody reads neither stops the server nor gets O_NONBLOCK set on it",
          "[io][hostile][log]") {
  temp_dir dir;
  const std::string content = pattern(100'000);
  write_file(dir.file("here.bin"), content);
  // The default rate, and no rate limit at all: then the pipe fills and
  // lines must be dropped rather than waited for.
  for (const std::vector<std::string>& rate : {std::vector<std::string>{}, {"--log-rate", "0"}}) {
    INFO((rate.empty() ? "default --log-rate" : "--log-rate 0"));
    stalled_log_server server("files", {"--file", dir.file("here.bin"), "--root", dir.path()});
    // A request for a missing file with a long name is one long log line:
    // 1,000 of them are far more than the pipe's 64 KiB.
    const std::string missing = as_text(protocol::encode_named_request(std::string(300, 'm'), 0));
    std::size_t answered = 0;
    for (int i = 0; i < 1000; ++i) {
      owned_fd client = connect_from("127.0.0.1", server.port);
      REQUIRE(send_all(client.get(), missing));
      const drained got = read_until_closed(client, 5s);
      if (got.bytes.size() != protocol::named_header_size) break;  // the server stopped answering
      ++answered;
    }
    CHECK(answered == 1000);
    // A real download meanwhile, and SIGTERM is honoured at once.
    auto real = run_command({program(), "files-client", "--port", std::to_string(server.port), "--backend",
                             backend_name(), "--output", dir.file("got.bin"), "--timeout", "10"},
                            20s);
    CHECK(real.status == 0);
    std::ifstream got(dir.file("got.bin"), std::ios::binary);
    CHECK(std::string(std::istreambuf_iterator<char>(got), {}) == content);
    // The description the parent shares with the server is as blocking as ever.
    CHECK((::fcntl(server.shared_end.get(), F_GETFL) & O_NONBLOCK) == 0);
    // Once there is room again, the next line out says how many were
    // dropped (over the rate, or with the pipe full), and so do the statistics.
    std::string logged = server.read_now();
    server.process->signal(SIGUSR1);
    logged += server.read_now(5s);
    INFO(logged.size() << " bytes in the pipe, ending: " << logged.substr(logged.size() - std::min<std::size_t>(logged.size(), 1500)));
    CHECK(logged.find(" lines dropped (over --log-rate, or stderr was full)\n") != std::string::npos);
    const auto stats = logged.find("log-dropped ");
    REQUIRE(stats != std::string::npos);
    CHECK(std::stoull(logged.substr(stats + 12)) > 0);
    // Lines are cut short, whatever a peer put into them.
    std::size_t longest = 0;
    for (std::size_t at = 0, end; (end = logged.find('\n', at)) != std::string::npos; at = end + 1) {
      longest = std::max(longest, end - at);
    }
    CHECK(longest <= 512);
    server.process->signal(SIGTERM);
    CHECK(server.process->wait_exit(5s) == 0);
  }
}
