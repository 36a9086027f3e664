// Servers under faults, hostile bytes and load, on the backend under test:
// each server is a child process started with the flags its case needs,
// driven by raw sockets of this process or by client processes; after each
// case the server still serves a normal client and its fd table is back to
// where it was.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../../support/plain.hpp"

using namespace switchboard::testing;

namespace {

struct server_process {
  child_process process;
  std::uint16_t port;

  // `service` with `extra` flags, run through `launcher` (such as prlimit) when given.
  server_process(std::string service, std::vector<std::string> extra,
                 std::vector<std::string> launcher = {})
      : process(args(std::move(service), std::move(extra), std::move(launcher))),
        port(process.wait_listening()) {
    REQUIRE(port != 0);
  }

  static std::vector<std::string> args(std::string service, std::vector<std::string> extra,
                                       std::vector<std::string> launcher) {
    std::vector<std::string> argv = std::move(launcher);
    for (std::string word : {program(), service, std::string("--port"), std::string("0"),
                             std::string("--backend"), backend_name()}) {
      argv.push_back(std::move(word));
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  bool alive() { return process.wait_exit(0ms) == std::nullopt; }
  std::size_t fds() const { return open_fds(process.pid()); }

  // The fd count at rest, the least of a few readings: under UBSan a vptr
  // check may hold a pipe open for a moment (it probes memory through one),
  // so a single reading can be two high.
  std::size_t resting_fds() const {
    std::size_t least = fds();
    for (int i = 0; i < 4; ++i) {
      std::this_thread::sleep_for(10ms);
      least = std::min(least, fds());
    }
    return least;
  }

  bool fds_back_to(std::size_t baseline, std::chrono::milliseconds limit = 5s) const {
    return switchboard::testing::fds_back_to(process.pid(), baseline, limit);
  }

  std::vector<std::string> client_args(std::string client, std::vector<std::string> extra) const {
    std::vector<std::string> argv{program(), std::move(client), "--port", std::to_string(port),
                                  "--backend", backend_name()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  command_result run_client(std::string client, std::vector<std::string> extra,
                            std::chrono::milliseconds limit = 60s) const {
    return run_command(client_args(std::move(client), std::move(extra)), limit);
  }

  // Our `client` with `extra` options still gets correct service: it exits
  // 0 and prints `expected`.
  void check_serves(std::string client, std::vector<std::string> extra, std::string_view expected) {
    REQUIRE(alive());
    auto result = run_client(std::move(client), std::move(extra), 30s);
    INFO(result.err);
    CHECK(result.status == 0);
    CHECK(result.out.find(expected) != std::string::npos);
  }

  // An echo server still echoes a fresh client's message.
  void check_echoes() {
    REQUIRE(alive());
    auto result = run_client("echo-client", {"--message", "still serving", "--timeout", "10"}, 20s);
    INFO(result.err);
    CHECK(result.status == 0);
    CHECK(result.out == "still serving");
  }

  void stop() {
    process.signal(SIGTERM);
    CHECK(process.wait_exit(15s) == 0);
  }
};

// Raises this process's soft fd limit to `wanted`; false, with a warning
// that the case is skipped, when the hard limit is lower. Servers and
// clients raise their own soft limit to the hard one.
bool enough_fds(rlim_t wanted) {
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_max < wanted) {
    WARN("skipped: the hard fd limit " << limit.rlim_max << " is below " << wanted);
    return false;
  }
  if (limit.rlim_cur < wanted) {
    limit.rlim_cur = wanted;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
  return true;
}

// A TCP socket to the server on loopback, owned; -1 when it could not connect.
class socket_fd {
 public:
  socket_fd() = default;
  explicit socket_fd(std::uint16_t port, int receive_buffer = 0) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    REQUIRE(fd_ >= 0);
    if (receive_buffer) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) close();
  }
  socket_fd(socket_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  socket_fd& operator=(socket_fd&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  ~socket_fd() { close(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void set_nonblocking() { ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK); }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  // Closes with SO_LINGER {1, 0}: the peer gets RST instead of FIN.
  void reset() {
    const linger hard{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    close();
  }

 private:
  int fd_ = -1;
};

bool wait_for(int fd, short events, std::chrono::milliseconds limit) {
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, static_cast<int>(limit.count())) == 1;
}

// Reads from a blocking socket until EOF, a reset or `limit` without a byte.
std::string read_to_end(socket_fd& s, std::chrono::milliseconds limit = 10s) {
  std::string all;
  char buf[65536];
  while (wait_for(s.get(), POLLIN, limit)) {
    const ssize_t n = ::recv(s.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && errno == EAGAIN) continue;
    if (n <= 0) break;
    all.append(buf, static_cast<std::size_t>(n));
  }
  return all;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// CPU time (user + system) the process has used so far.
std::chrono::milliseconds cpu_time(pid_t pid) {
  const std::string all = read_file("/proc/" + std::to_string(pid) + "/stat");
  // Fields after the command name, which ends at the last ')': state is field 3,
  // utime and stime are fields 14 and 15.
  std::istringstream fields(all.substr(all.rfind(')') + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  const long ticks = ::sysconf(_SC_CLK_TCK);
  return std::chrono::milliseconds((utime + stime) * 1000 / static_cast<unsigned long long>(ticks));
}

std::string random_bytes(std::mt19937& random, std::size_t size) {
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(random());
  return bytes;
}

// Bytes that differ at every offset, so that a misplaced byte shows.
std::string write_pattern_file(const std::string& path, std::size_t size) {
  std::string bytes(size, '\0');
  std::uint32_t state = 99;
  for (char& c : bytes) {
    state = state * 1103515245u + 12345u;
    c = static_cast<char>(state >> 24);
  }
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(size));
  return bytes;
}

// The seed protocol's command 2: the rest of the file from `offset`, the
// offset as "%d" with its NUL in a 10-byte field.
std::string seed_resume_request(std::size_t offset) {
  char field[10] = {};
  std::snprintf(field, sizeof field, "%zu", offset);
  return std::string("2\0", 2) + std::string(field, sizeof field);
}

// Sprays `connections` connections of 1 byte to 8 KiB of random bytes at a
// TCP server. An echo server must send each back intact; any other answers
// as its protocol allows, and half the connections wait for it to hang up.
// Its fd table is back to where it was afterwards.
void spray_stream(server_process& server, std::mt19937& random, bool echoes, int connections = 40) {
  const std::size_t baseline = server.resting_fds();
  for (int i = 0; i < connections; ++i) {
    socket_fd rude(server.port);
    REQUIRE(rude);
    const std::string junk = random_bytes(random, 1 + random() % 8192);
    if (echoes) {
      REQUIRE(send_all(rude.get(), junk));
      std::string back(junk.size(), '\0');
      CHECK(::recv(rude.get(), back.data(), back.size(), MSG_WAITALL) == static_cast<ssize_t>(junk.size()));
      CHECK(back == junk);
      continue;
    }
    // The server may hang up before it has read all the junk.
    send_all(rude.get(), junk);
    if (i % 2 == 0) read_to_end(rude, 3s);
  }
  REQUIRE(server.alive());
  CHECK(server.fds_back_to(baseline));
}

struct udp_tally {
  std::size_t sent = 0;      // bytes sprayed from one source
  std::size_t returned = 0;  // bytes the server sent back to it
};

// Sprays datagrams of 0 to 2 KiB of random bytes at a UDP server, `each`
// from each of `sources` sockets, then takes what comes back until the
// server falls silent. The server's fd table ends where it began.
std::vector<udp_tally> spray_datagrams(server_process& server, std::mt19937& random, int sources = 10,
                                       int each = 30) {
  const std::size_t baseline = server.resting_fds();
  std::vector<plain_socket> sprayers;
  std::vector<udp_tally> tallies(static_cast<std::size_t>(sources));
  for (int i = 0; i < sources; ++i) {
    auto sprayer = plain_socket::udp();
    REQUIRE(sprayer);
    sprayers.push_back(std::move(*sprayer));
  }
  for (int j = 0; j < each; ++j) {
    for (std::size_t i = 0; i < sprayers.size(); ++i) {
      const std::string junk = random_bytes(random, random() % 2048);
      sprayers[i].send_to(junk, server.port);
      tallies[i].sent += junk.size();
    }
  }
  std::vector<pollfd> waiting;
  for (const plain_socket& sprayer : sprayers) waiting.push_back({sprayer.fd(), POLLIN, 0});
  while (::poll(waiting.data(), waiting.size(), 300) > 0) {
    for (std::size_t i = 0; i < sprayers.size(); ++i) {
      if (waiting[i].revents & POLLIN) tallies[i].returned += sprayers[i].receive(0ms).value_or("").size();
    }
  }
  REQUIRE(server.alive());
  CHECK(server.fds_back_to(baseline));
  return tallies;
}

// Round trips of one small message on a fresh connection, sorted.
std::vector<std::chrono::microseconds> round_trips(std::uint16_t port, int count) {
  socket_fd s(port);
  REQUIRE(s);
  std::vector<std::chrono::microseconds> times;
  char buf[64];
  for (int i = 0; i < count; ++i) {
    const auto start = steady::now();
    REQUIRE(send_all(s.get(), "ping-pong"));
    std::size_t got = 0;
    while (got < 9) {
      REQUIRE(wait_for(s.get(), POLLIN, 10s));
      const ssize_t n = ::recv(s.get(), buf, sizeof buf, 0);
      REQUIRE(n > 0);
      got += static_cast<std::size_t>(n);
    }
    times.push_back(std::chrono::duration_cast<std::chrono::microseconds>(steady::now() - start));
  }
  std::sort(times.begin(), times.end());
  return times;
}

}  // namespace

TEST_CASE("with 256 fds, 1,000 connection attempts neither kill the server nor spin it",
          "[io][robust][emfile]") {
  if (!enough_fds(2000)) return;
  if (sanitized_build) {
    // UBSan checks a vptr by probing memory through a pipe(), which a full fd
    // table refuses: it then reports a false error and stops the server.
    WARN("skipped in the sanitizer build: UBSan cannot probe memory without free fds");
    return;
  }
  // --max-connections above the fd limit, so that accept() itself runs out.
  server_process server("echo",
                        {"--idle-timeout", "0", "--max-connections", "1000", "--max-connections-per-source", "1000000"},
                        {"prlimit", "--nofile=256:256"});
  const std::size_t baseline = server.resting_fds();
  const auto cpu_before = cpu_time(server.process.pid());
  const auto start = steady::now();
  std::vector<socket_fd> crowd;
  for (int i = 0; i < 1000; ++i) {
    crowd.emplace_back(server.port);
    // The kernel's backlog takes what the server cannot accept; a refused
    // attempt counts as an attempt too.
  }
  std::this_thread::sleep_for(1s);  // the server faces a full table meanwhile
  const auto wall = steady::now() - start;
  const auto cpu = cpu_time(server.process.pid()) - cpu_before;
  INFO("server CPU " << cpu.count() << " ms over "
                     << std::chrono::duration_cast<std::chrono::milliseconds>(wall).count() << " ms");
  CHECK(cpu < wall / 2);
  REQUIRE(server.alive());
  CHECK(server.process.wait_for_line("out of file descriptors", 1s));
  crowd.clear();
  CHECK(server.fds_back_to(baseline));
  server.check_echoes();
  server.stop();
}

TEST_CASE("10,000 concurrent echo connections each echo intact", "[io][robust][load]") {
  if (!enough_fds(10'200)) return;
  server_process server("echo", {"--max-connections-per-source", "1000000"});  // all from 127.0.0.1
  const std::size_t baseline = server.resting_fds();
  auto result = server.run_client(
      "echo-client", {"--size", "32", "--count", "2", "--connections", "10000", "--timeout", "100"},
      120s);
  INFO(result.err);
  CHECK(result.status == 0);
  CHECK(result.out.find("over 10000 connections") != std::string::npos);
  CHECK(server.fds_back_to(baseline, 10s));
  server.stop();
}

TEST_CASE("5,000 idle connections beside 50 active clients starve nobody", "[io][robust][load]") {
  if (!enough_fds(6000)) return;
  server_process server("echo", {"--idle-timeout", "0", "--max-connections-per-source", "1000000"});
  const std::size_t baseline = server.resting_fds();
  const auto quiet = round_trips(server.port, 500);
  std::vector<socket_fd> idle;
  for (int i = 0; i < 5000; ++i) {
    idle.emplace_back(server.port);
    REQUIRE(idle.back());
  }
  child_process active({program(), "echo-client", "--port", std::to_string(server.port), "--backend",
                        backend_name(), "--size", "64", "--count", "200", "--connections", "50",
                        "--timeout", "60"});
  const auto crowded = round_trips(server.port, 500);
  CHECK(active.wait_exit(90s) == 0);
  const auto p99 = [](const std::vector<std::chrono::microseconds>& sorted) {
    return sorted[sorted.size() * 99 / 100].count();
  };
  WARN("echo p99 round trip on " << backend_name() << ": " << p99(quiet) << " us alone, "
                                 << p99(crowded)
                                 << " us beside 5,000 idle connections and 50 active clients");
  idle.clear();
  CHECK(server.fds_back_to(baseline, 10s));
  server.check_echoes();
  server.stop();
}

TEST_CASE("a client that never reads stalls only itself and is dropped after --send-timeout",
          "[io][robust][slow]") {
  server_process server("echo", {"--send-timeout", "1", "--idle-timeout", "0"});
  const std::size_t baseline = server.resting_fds();
  const std::size_t rss_before = rss_kib(server.process.pid());
  socket_fd hog(server.port);
  REQUIRE(hog);
  hog.set_nonblocking();
  // Sends until both directions' buffers are full and the server stalls writing.
  const std::string chunk(64 * 1024, 'h');
  std::size_t sent = 0;
  const auto give_up = steady::now() + 5s;
  while (steady::now() < give_up) {
    const ssize_t n = ::send(hog.get(), chunk.data(), chunk.size(), MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
    } else if (!wait_for(hog.get(), POLLOUT, 200ms)) {
      break;
    }
  }
  INFO("the hog got " << sent << " bytes in before the server stalled");
  CHECK(server.alive());
  auto other = server.run_client("echo-client", {"--size", "100000", "--count", "5", "--timeout", "10"});
  CHECK(other.status == 0);
  if (rss_is_meaningful) CHECK(rss_kib(server.process.pid()) < rss_before + 8 * 1024);
  // The stalled connection goes once its write waited the send timeout.
  CHECK(server.fds_back_to(baseline, 5s));
  server.check_echoes();
  server.stop();
}

TEST_CASE("a half-closed client still receives every echoed byte, then EOF", "[io][robust]") {
  server_process server("echo", {});
  const std::size_t baseline = server.resting_fds();
  socket_fd client(server.port);
  REQUIRE(client);
  client.set_nonblocking();
  std::mt19937 random(4);
  const std::string sent = random_bytes(random, 4 * 1024 * 1024);
  std::string echoed;
  std::size_t written = 0;
  bool eof = false;
  const auto give_up = steady::now() + 20s;
  char buf[65536];
  while (!eof && steady::now() < give_up) {
    const short want = written < sent.size() ? POLLIN | POLLOUT : POLLIN;
    pollfd p{client.get(), want, 0};
    ::poll(&p, 1, 1000);
    if (p.revents & POLLOUT) {
      const ssize_t n = ::send(client.get(), sent.data() + written, sent.size() - written, MSG_NOSIGNAL);
      if (n > 0) written += static_cast<std::size_t>(n);
      if (written == sent.size()) REQUIRE(::shutdown(client.get(), SHUT_WR) == 0);
    }
    if (p.revents & (POLLIN | POLLHUP)) {
      const ssize_t n = ::recv(client.get(), buf, sizeof buf, 0);
      if (n > 0) echoed.append(buf, static_cast<std::size_t>(n));
      eof = n == 0;
    }
  }
  CHECK(written == sent.size());
  CHECK(eof);
  CHECK(echoed.size() == sent.size());
  CHECK(echoed == sent);
  CHECK(server.fds_back_to(baseline));  // the server closed its side after the EOF
  server.check_echoes();
  server.stop();
}

TEST_CASE("a peer reset in the middle of a download leaves the files server serving",
          "[io][robust][files]") {
  temp_dir dir;
  const std::string content = write_pattern_file(dir.file("big.bin"), 8 * 1024 * 1024);
  server_process server("files", {"--file", dir.file("big.bin")});
  const std::size_t baseline = server.resting_fds();
  for (int i = 0; i < 10; ++i) {
    socket_fd rude(server.port, 16 * 1024);
    REQUIRE(rude);
    REQUIRE(send_all(rude.get(), std::string_view("0\0", 2)));
    char buf[4096];
    REQUIRE(wait_for(rude.get(), POLLIN, 5s));
    CHECK(::recv(rude.get(), buf, sizeof buf, 0) > 0);
    rude.reset();
  }
  CHECK(server.fds_back_to(baseline));
  socket_fd polite(server.port);
  REQUIRE(send_all(polite.get(), std::string_view("0\0", 2)));
  CHECK(read_to_end(polite) == content);
  server.stop();
}

TEST_CASE("SIGTERM during 50 downloads: each completes or resumes to an identical file, exit 0",
          "[io][robust][files][signal]") {
  temp_dir dir;
  const std::string content = write_pattern_file(dir.file("big.bin"), 16 * 1024 * 1024);
  const std::vector<std::string> flags{"--file", dir.file("big.bin"), "--drain-timeout", "1"};
  std::vector<socket_fd> downloads;
  std::vector<std::string> received(50);
  std::vector<bool> ended(50, false);
  std::vector<char> buf(1 << 20);
  // Half read as fast as they can, half at 64 KiB per 10 ms: those are
  // still in flight when the drain timeout ends.
  const auto read_round = [&] {
    for (std::size_t i = 0; i < downloads.size(); ++i) {
      if (ended[i]) continue;
      const std::size_t most = i % 2 == 0 ? buf.size() : 64 * 1024;
      const ssize_t n = ::recv(downloads[i].get(), buf.data(), most, MSG_DONTWAIT);
      if (n > 0) received[i].append(buf.data(), static_cast<std::size_t>(n));
      if (n == 0 || (n < 0 && errno != EAGAIN)) ended[i] = true;
    }
  };
  {
    server_process server("files", flags);
    for (int i = 0; i < 50; ++i) {
      downloads.emplace_back(server.port, 64 * 1024);
      REQUIRE(downloads.back());
      REQUIRE(send_all(downloads.back().get(), std::string_view("0\0", 2)));
    }
    // Every transfer has begun before the signal.
    const auto begun = steady::now() + 10s;
    while (steady::now() < begun &&
           std::any_of(received.begin(), received.end(), [](auto& r) { return r.empty(); })) {
      read_round();
      std::this_thread::sleep_for(1ms);
    }
    server.process.signal(SIGTERM);
    const auto signalled = steady::now();
    const auto give_up = signalled + 20s;
    bool refused = false;  // the listener closes at once, before the drain
    while (steady::now() < give_up &&
           (!refused || std::find(ended.begin(), ended.end(), false) != ended.end())) {
      read_round();
      refused = refused || !socket_fd(server.port);
      std::this_thread::sleep_for(10ms);
    }
    CHECK(refused);
    CHECK(server.process.wait_exit(5s) == 0);
    CHECK(steady::now() - signalled < 10s);
  }
  server_process again("files", flags);
  int cut = 0;
  for (std::size_t i = 0; i < received.size(); ++i) {
    INFO("download " << i << " had " << received[i].size() << " bytes");
    CHECK(ended[i]);
    REQUIRE(received[i].size() <= content.size());
    CHECK(std::string_view(received[i]) == std::string_view(content).substr(0, received[i].size()));
    if (received[i].size() < content.size()) {
      ++cut;
      socket_fd resume(again.port);
      REQUIRE(send_all(resume.get(), seed_resume_request(received[i].size())));
      CHECK(received[i] + read_to_end(resume) == content);
    }
  }
  INFO(cut << " of 50 downloads were cut short and resumed");
  CHECK(cut > 0);  // the slow half cannot finish 16 MiB within the drain timeout
  again.stop();
}

TEST_CASE("random bytes into every port of echo and files leave them serving", "[io][robust][fuzz]") {
  std::mt19937 random(7);
  {
    server_process echo("echo", {});
    spray_stream(echo, random, true);
    echo.check_echoes();
    echo.stop();
  }
  temp_dir dir;
  const std::string content = write_pattern_file(dir.file("small.bin"), 100'000);
  {
    // Junk that happens to begin a valid request ends at the request timeout.
    server_process files("files", {"--file", dir.file("small.bin"), "--request-timeout", "1"});
    spray_stream(files, random, false);
    files.check_serves("files-client", {"--output", dir.file("tcp.bin"), "--timeout", "10"}, "");
    CHECK(read_file(dir.file("tcp.bin")) == content);
    files.stop();
  }
  {
    server_process files("files", {"--udp", "--file", dir.file("small.bin")});
    spray_datagrams(files, random);
    files.check_serves("files-client", {"--udp", "--output", dir.file("udp.bin"), "--timeout", "20"}, "");
    CHECK(read_file(dir.file("udp.bin")) == content);
    files.stop();
  }
}

TEST_CASE("random bytes into every port of ack, daytime, udp-echo and guess leave them serving",
          "[io][robust][fuzz]") {
  std::mt19937 random(11);
  // Junk without a line end ends at the request timeout; junk that ends
  // exactly at one, at the idle timeout.
  const std::vector<std::string> limits{"--request-timeout", "1", "--idle-timeout", "2"};
  {
    server_process ack("ack", limits);
    spray_stream(ack, random, false);
    ack.check_serves("ack-client", {"--message", "still serving", "--timeout", "10"}, "I got your message\n");
    CHECK(ack.process.out().find(": still serving\n") != std::string::npos);
    ack.stop();
  }
  {
    server_process daytime("daytime", limits);
    spray_stream(daytime, random, false);
    daytime.check_serves("daytime-client", {"--timeout", "10"}, "-UTC\n");
    daytime.stop();
  }
  {
    server_process daytime("daytime", {"--udp"});
    spray_datagrams(daytime, random);
    daytime.check_serves("daytime-client", {"--udp", "--timeout", "10"}, "-UTC\n");
    daytime.stop();
  }
  {
    server_process echo("udp-echo", {});
    for (const udp_tally& source : spray_datagrams(echo, random)) {
      CHECK(source.returned <= source.sent);  // no amplification, whatever the rate limit lets through
    }
    echo.check_serves("udp-echo-client", {"--message", "still serving", "--timeout", "10"}, "still serving\n");
    echo.stop();
  }
  {
    server_process guess("guess", limits);
    spray_stream(guess, random, false);
    guess.check_serves("guess-client", {"--auto", "--timeout", "20"}, "won in");
    guess.stop();
  }
  {
    server_process guess("guess", {"--udp"});
    spray_datagrams(guess, random);
    guess.check_serves("guess-client", {"--udp", "--auto", "--timeout", "20"}, "won in");
    guess.stop();
  }
}

TEST_CASE("a byte every 2 s: a request is cut off at --request-timeout 3, echo goes on, others are served",
          "[io][robust][slow]") {
  temp_dir dir;
  const std::string content = write_pattern_file(dir.file("small.bin"), 100'000);
  // The same limits everywhere: the request timeout is shorter than the
  // four drops take, and each gap between drops is shorter than the idle timeout.
  const std::vector<std::string> limits{"--request-timeout", "3", "--idle-timeout", "3"};
  std::vector<std::string> files_flags{"--file", dir.file("small.bin")};
  files_flags.insert(files_flags.end(), limits.begin(), limits.end());
  server_process ack("ack", limits);
  server_process guess("guess", limits);
  server_process files("files", files_flags);
  server_process echo("echo", limits);
  std::vector<server_process*> servers{&ack, &guess, &files, &echo};
  // On io_uring a download leaves a pipe pair behind for the next one (its
  // sendfile is two splices): the baseline is taken with it in place.
  REQUIRE(files.run_client("files-client", {"--output", dir.file("first.bin"), "--timeout", "10"}).status == 0);
  std::vector<std::size_t> baselines;
  for (server_process* server : servers) baselines.push_back(server->resting_fds());

  // A raw client that sends `preamble` at once, then one byte of `drip`
  // every 2 s while it is connected.
  struct dripper {
    dripper(plain_socket to, std::string first, std::string bytes)
        : socket(std::move(to)), preamble(std::move(first)), drip(std::move(bytes)) {}
    plain_socket socket;
    std::string preamble;
    std::string drip;
    std::string received;
    std::optional<steady::duration> closed_after;
  };
  // The seed's files client sends its command before the offset; a request
  // (the offset) begins at the offset's first byte.
  const std::string resume = seed_resume_request(1000);
  std::vector<dripper> drippers;
  drippers.emplace_back(plain_socket::tcp(ack.port), "", "ping");
  drippers.emplace_back(plain_socket::tcp(guess.port), "", "100\n");
  drippers.emplace_back(plain_socket::tcp(files.port), resume.substr(0, 2), resume.substr(2, 4));
  drippers.emplace_back(plain_socket::tcp(echo.port), "", "ping");
  const auto start = steady::now();
  // Takes what the servers send until `until`, noting when each hangs up.
  const auto read_until = [&](steady::time_point until) {
    while (steady::now() < until) {
      std::vector<pollfd> open;
      std::vector<dripper*> owners;
      for (dripper& d : drippers) {
        if (d.closed_after) continue;
        open.push_back({d.socket.fd(), POLLIN, 0});
        owners.push_back(&d);
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - steady::now());
      if (::poll(open.data(), open.size(), static_cast<int>(std::clamp(left.count(), 0L, 50L))) <= 0) continue;
      for (std::size_t i = 0; i < open.size(); ++i) {
        if (!(open[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        char buf[4096];
        const ssize_t n = ::recv(open[i].fd, buf, sizeof buf, 0);
        if (n > 0) {
          owners[i]->received.append(buf, static_cast<std::size_t>(n));
        } else {
          owners[i]->closed_after = steady::now() - start;
        }
      }
    }
  };
  std::deque<child_process> others;
  for (int drop = 0; drop < 4; ++drop) {
    read_until(start + drop * 2s);
    for (dripper& d : drippers) {
      if (d.closed_after) continue;
      // A hang-up not seen yet makes this send fail harmlessly (MSG_NOSIGNAL).
      d.socket.send((drop == 0 ? d.preamble : "") + d.drip.substr(static_cast<std::size_t>(drop), 1));
    }
    if (drop == 0) {
      // Clients of ours, served while every dripper holds its connection.
      others.emplace_back(ack.client_args("ack-client", {"--message", "meanwhile", "--timeout", "10"}));
      others.emplace_back(guess.client_args("guess-client", {"--auto", "--timeout", "10"}));
      others.emplace_back(files.client_args("files-client", {"--output", dir.file("got.bin"), "--timeout", "10"}));
      others.emplace_back(echo.client_args("echo-client", {"--message", "meanwhile", "--timeout", "10"}));
    }
  }
  read_until(start + 6500ms);

  const auto cut_at_request_timeout = [](const dripper& d) {
    REQUIRE(d.closed_after.has_value());
    INFO("cut off after " << std::chrono::duration_cast<std::chrono::milliseconds>(*d.closed_after).count()
                          << " ms");
    CHECK(*d.closed_after >= 2500ms);
    CHECK(*d.closed_after < 4500ms);  // the drip would have gone on to 6 s
  };
  // Ack's message ends at a lull of 200 ms, long before the next drop: the
  // dripper is answered for its first byte, never held until the timeout.
  CHECK(drippers[0].received == "I got your message");
  REQUIRE(drippers[0].closed_after.has_value());
  CHECK(*drippers[0].closed_after < 1500ms);
  CHECK(ack.process.out().find(": p\n") != std::string::npos);
  CHECK(drippers[1].received == "guess a number from 1 to 100\n");
  cut_at_request_timeout(drippers[1]);
  CHECK(drippers[2].received.empty());
  cut_at_request_timeout(drippers[2]);
  // Echo has no requests: each drop is echoed, and gaps under the idle
  // timeout never close it.
  CHECK(drippers[3].received == "ping");
  CHECK_FALSE(drippers[3].closed_after.has_value());
  drippers[3].socket.close();

  for (child_process& other : others) CHECK(other.wait_exit(10s) == 0);
  CHECK(others[0].out() == "I got your message\n");
  CHECK(others[1].out().find("won in") != std::string::npos);
  CHECK(read_file(dir.file("got.bin")) == content);
  CHECK(others[3].out() == "meanwhile");
  for (std::size_t i = 0; i < servers.size(); ++i) {
    CHECK(servers[i]->fds_back_to(baselines[i]));
    servers[i]->stop();
  }
}

TEST_CASE("--max-connections 20: 10 more clients are closed at once, and room frees up",
          "[io][robust][limits]") {
  // All from 127.0.0.1: its share of the slots is all of them here.
  server_process server("echo", {"--max-connections", "20", "--max-connections-per-source", "20",
                                 "--idle-timeout", "0"});
  const std::size_t baseline = server.resting_fds();
  std::vector<socket_fd> served;
  char buf[16];
  for (int i = 0; i < 20; ++i) {
    served.emplace_back(server.port);
    REQUIRE(send_all(served.back().get(), "hi"));
    CHECK(::recv(served.back().get(), buf, 2, MSG_WAITALL) == 2);
  }
  for (int i = 0; i < 10; ++i) {
    socket_fd extra(server.port);
    REQUIRE(extra);
    REQUIRE(wait_for(extra.get(), POLLIN, 5s));
    CHECK(::recv(extra.get(), buf, sizeof buf, 0) <= 0);  // EOF (or a reset), no echo
  }
  server.process.signal(SIGUSR1);
  auto stats = server.process.wait_for_line("stats:");
  REQUIRE(stats);
  CHECK(stats->find("open 20 total 20 rejected 10") != std::string::npos);
  served.clear();
  CHECK(server.fds_back_to(baseline));
  server.check_echoes();
  server.stop();
}

TEST_CASE("a second SIGTERM during the drain exits at once with 128 + 15", "[io][robust][signal]") {
  temp_dir dir;
  write_pattern_file(dir.file("big.bin"), 16 * 1024 * 1024);
  server_process server("files", {"--file", dir.file("big.bin"), "--drain-timeout", "30"});
  socket_fd stalled(server.port, 16 * 1024);  // asks for the file and reads none of it
  REQUIRE(send_all(stalled.get(), std::string_view("0\0", 2)));
  REQUIRE(wait_for(stalled.get(), POLLIN, 5s));
  server.process.signal(SIGTERM);
  REQUIRE(server.process.wait_for_line("no longer accepting"));
  CHECK(server.process.wait_exit(500ms) == std::nullopt);  // draining the stalled download
  server.process.signal(SIGTERM);
  CHECK(server.process.wait_exit(5s) == 128 + SIGTERM);
}

TEST_CASE("a drain timeout of 0 lets a connection finish however long it takes", "[io][robust][signal]") {
  server_process server("echo", {"--drain-timeout", "0"});
  socket_fd client(server.port);
  REQUIRE(send_all(client.get(), "before"));
  REQUIRE(wait_for(client.get(), POLLIN, 5s));
  char buf[64];
  REQUIRE(::recv(client.get(), buf, sizeof buf, 0) == 6);
  server.process.signal(SIGTERM);
  REQUIRE(server.process.wait_for_line("no longer accepting"));
  CHECK(server.process.wait_exit(1500ms) == std::nullopt);  // 0 is no limit, not "at once"
  REQUIRE(send_all(client.get(), "during"));
  REQUIRE(wait_for(client.get(), POLLIN, 5s));
  CHECK(::recv(client.get(), buf, sizeof buf, 0) == 6);
  client = socket_fd();
  CHECK(server.process.wait_exit(5s) == 0);
}
