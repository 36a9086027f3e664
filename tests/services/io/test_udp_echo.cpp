// The UDP echo service as a user runs it: a server process on the backend
// under test, reached by udp-echo-client and by plain UDP sockets.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "../../support/plain.hpp"

using namespace switchboard::testing;

TEST_CASE("udp-echo-client gets its message, an empty one and 65,507 bytes back", "[io][udp-echo]") {
  service_process server("udp-echo");
  REQUIRE(server.port != 0);
  auto hello = server.client("udp-echo-client", {"--message", "hello, datagram"});
  INFO(hello.err);
  CHECK(hello.status == 0);
  CHECK(hello.out == "hello, datagram\n");
  auto empty = server.client("udp-echo-client", {"--message", ""});
  CHECK(empty.status == 0);
  CHECK(empty.out == "\n");
  for (const char* size : {"0", "1", "1500", "65507"}) {
    INFO(size << " bytes");
    auto verified = server.client("udp-echo-client", {"--size", size});
    CHECK(verified.status == 0);
    CHECK(verified.out == "echoed a datagram of " + std::string(size) + " bytes intact\n");
  }
  server.stop();
}

TEST_CASE("a plain UDP socket gets each datagram back whole, from empty to 65,507 bytes",
          "[io][udp-echo]") {
  service_process server("udp-echo");
  auto client = plain_socket::udp();
  REQUIRE(client);
  std::string largest(65'507, '\0');
  for (std::size_t i = 0; i < largest.size(); ++i) largest[i] = static_cast<char>(i * 31 + i / 97);
  for (const std::string& datagram : {std::string(), std::string("x"), std::string("line\r\n"), largest}) {
    INFO(datagram.size() << " bytes");
    client->send_to(datagram, server.port);
    const auto echoed = client->receive();
    REQUIRE(echoed);
    CHECK(*echoed == datagram);
  }
  // Datagrams keep their boundaries: three sent, three back, in order.
  for (const char* part : {"one", "two", "three"}) client->send_to(part, server.port);
  for (const char* part : {"one", "two", "three"}) CHECK(client->receive() == part);
  server.stop();
}

TEST_CASE("50 clients at once each get their own datagrams back", "[io][udp-echo][load]") {
  // 150 datagrams at once from one address: more than one source's burst.
  service_process server("udp-echo", {"--udp-rate", "100000"});
  std::vector<plain_socket> clients;
  for (int i = 0; i < 50; ++i) {
    auto client = plain_socket::udp();
    REQUIRE(client);
    clients.push_back(std::move(*client));
  }
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 50; ++i) {
      clients[i].send_to("client " + std::to_string(i) + " round " + std::to_string(round), server.port);
    }
  }
  for (int i = 0; i < 50; ++i) {
    for (int round = 0; round < 3; ++round) {
      CHECK(clients[i].receive() == "client " + std::to_string(i) + " round " + std::to_string(round));
    }
  }
  server.stop();
}

TEST_CASE("udp-echo answers over IPv6 and never a source port below 1024", "[io][udp-echo][ipv6]") {
  service_process server("udp-echo", {"--host", "::1"});
  REQUIRE(server.port != 0);
  auto client = plain_socket::udp(0, "::1");
  REQUIRE(client);
  client->send_to("over IPv6", server.port, "::1");
  CHECK(client->receive() == "over IPv6");

  auto privileged = plain_socket::udp(1000, "::1");
  if (!privileged) {
    REQUIRE((errno == EACCES || errno == EADDRINUSE));
    WARN("cannot bind a port below 1024 here: the low-port check is skipped");
  } else {
    privileged->send_to("reflect me", server.port, "::1");
    CHECK_FALSE(privileged->receive(500ms));
  }
  server.stop();
}
