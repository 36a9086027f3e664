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

#include "../support/plain.hpp"
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

// The `n`th of many loopback addresses: 127.1.0.1, 127.1.0.2, ... (250 per /24).
std::string nth_loopback(std::size_t n) {
  return "127.1." + std::to_string(n / 250) + "." + std::to_string(n % 250 + 1);
}

}  // namespace

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
