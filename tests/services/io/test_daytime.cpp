// The daytime service (RFC 867) as a user runs it: a server process on the
// backend under test, over TCP, UDP and a Unix path, reached by
// daytime-client and by plain sockets; every line is parsed back and must be
// close to the test's own clock.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "../../support/plain.hpp"
#include "daytime/protocol.hpp"

using namespace switchboard::testing;
using switchboard::services::daytime::parse_daytime_line;

namespace {

// True when `line` is a daytime line within a few seconds of now.
bool is_now(const std::string& line) {
  const auto when = parse_daytime_line(line);
  if (!when) return false;
  const auto now = std::chrono::system_clock::now();
  return *when > now - 5s && *when < now + 5s;
}

}  // namespace

TEST_CASE("daytime-client prints the time over TCP, UDP and a Unix path", "[io][daytime]") {
  service_process tcp("daytime");
  REQUIRE(tcp.port != 0);
  auto over_tcp = tcp.client("daytime-client");
  INFO(over_tcp.err);
  CHECK(over_tcp.status == 0);
  CHECK(over_tcp.out.ends_with("-UTC\n"));
  CHECK(is_now(over_tcp.out));
  tcp.stop();

  service_process udp("daytime", {"--udp"});
  REQUIRE(udp.port != 0);
  auto over_udp = udp.client("daytime-client", {"--udp"});
  CHECK(over_udp.status == 0);
  CHECK(is_now(over_udp.out));
  udp.stop();

  temp_dir dir;
  const std::string path = dir.file("daytime.sock");
  service_process local("daytime", {"--unix", path});
  auto over_unix = run_command({program(), "daytime-client", "--unix", path, "--backend", backend_name()});
  CHECK(over_unix.status == 0);
  CHECK(is_now(over_unix.out));
  auto plain = plain_socket::unix_stream(path);
  const auto line = plain.until_closed();
  CHECK(line.closed);
  CHECK(is_now(line.bytes));
  local.stop();
}

TEST_CASE("a plain TCP client gets one CRLF-terminated line and the close", "[io][daytime]") {
  service_process server("daytime");
  // A client that sends something first is answered the same way.
  for (const bool speaks : {false, true}) {
    auto client = plain_socket::tcp(server.port);
    if (speaks) client.send("what time is it?\r\n");
    const auto line = client.until_closed();
    CHECK(line.closed);
    CHECK(line.bytes.ends_with("-UTC\r\n"));
    CHECK(line.bytes.find('\n') == line.bytes.size() - 1);
    CHECK(is_now(line.bytes));
  }
  server.stop();
}

TEST_CASE("50 TCP clients at once each get the time", "[io][daytime][load]") {
  service_process server("daytime");
  std::vector<plain_socket> clients;
  for (int i = 0; i < 50; ++i) clients.push_back(plain_socket::tcp(server.port));
  for (auto& client : clients) CHECK(is_now(client.until_closed().bytes));
  server.stop();
}

TEST_CASE("daytime over UDP answers any datagram from a port >= 1024 and drops lower ones",
          "[io][daytime][udp]") {
  // 51 datagrams at once from one address: more than one source's burst.
  service_process server("daytime", {"--udp", "--udp-rate", "100000"});
  std::vector<plain_socket> clients;
  for (int i = 0; i < 50; ++i) {
    auto client = plain_socket::udp();
    REQUIRE(client);
    clients.push_back(std::move(*client));
  }
  for (auto& client : clients) client.send_to("", server.port);
  clients[0].send_to("anything at all", server.port);
  for (auto& client : clients) {
    const auto line = client.receive();
    REQUIRE(line);
    CHECK(line->ends_with("\r\n"));
    CHECK(is_now(*line));
  }
  CHECK(is_now(clients[0].receive().value_or("")));
  // Larger than any request the server takes (512 bytes): dropped unread.
  clients[2].send_to(std::string(513, 'x'), server.port);
  CHECK_FALSE(clients[2].receive(300ms));
  clients[2].send_to(std::string(512, 'x'), server.port);
  CHECK(is_now(clients[2].receive().value_or("")));

  // Low source ports are dropped, against reflection loops between services.
  auto privileged = plain_socket::udp(1001);
  if (!privileged) {
    REQUIRE((errno == EACCES || errno == EADDRINUSE));
    WARN("cannot bind a port below 1024 here: the low-port check is skipped");
  } else {
    privileged->send_to("", server.port);
    CHECK_FALSE(privileged->receive(500ms));
    clients[1].send_to("", server.port);  // while an unprivileged port is still answered
    CHECK(is_now(clients[1].receive().value_or("")));
  }
  server.stop();
}
