// The ack service as a user runs it: a server process on the backend under
// test, reached by ack-client and by plain sockets that know nothing of
// switchboard, the way the seeds' clients end their messages.
#include <catch2/catch.hpp>

#include <sys/socket.h>

#include <string>
#include <vector>

#include "../../support/plain.hpp"

using namespace switchboard::testing;

namespace {

const std::string reply = "I got your message";

std::string from(const plain_socket& client, const char* host = "127.0.0.1") {
  const std::string address = std::string(host).find(':') != std::string::npos
                                  ? "[" + std::string(host) + "]"
                                  : std::string(host);
  return "message from " + address + ":" + std::to_string(client.local_port()) + ": ";
}

}  // namespace

TEST_CASE("ack-client's message is printed by the server and acknowledged", "[io][ack]") {
  service_process server("ack");
  REQUIRE(server.port != 0);
  auto sent = server.client("ack-client", {"--message", "hello from the test"});
  INFO(sent.err);
  CHECK(sent.status == 0);
  CHECK(sent.out == reply + "\n");
  CHECK(server.printed(": hello from the test\n"));
  CHECK(server.process.out().starts_with("message from 127.0.0.1:"));

  auto greeting = server.client("ack-client");
  CHECK(greeting.status == 0);
  CHECK(server.printed(": Hello from switchboard\n"));
  server.stop();
}

TEST_CASE("a plain client ending its message with CRLF gets exactly the 18-byte reply",
          "[io][ack]") {
  service_process server("ack");
  auto client = plain_socket::tcp(server.port);
  REQUIRE(client.send("seed 003 says hi\r\n"));
  const auto answer = client.until_closed();
  CHECK(answer.closed);
  CHECK(answer.bytes == reply);
  CHECK(server.printed(from(client) + "seed 003 says hi\n"));
  server.stop();
}

TEST_CASE("bytes outside printable ASCII are printed as \\xNN", "[io][ack]") {
  service_process server("ack");
  auto client = plain_socket::tcp(server.port);
  REQUIRE(client.send("tab\there\x01\xff\\ \r\n"));
  CHECK(client.until_closed().bytes == reply);
  CHECK(server.printed(from(client) + "tab\\x09here\\x01\\xff\\ \n"));
  server.stop();
}

TEST_CASE("a message without a newline is answered after the lull, the client still open (seed 004)",
          "[io][ack]") {
  service_process server("ack");
  auto client = plain_socket::tcp(server.port);
  const auto start = steady::now();
  REQUIRE(client.send("no newline, and I wait"));
  const auto answer = client.until_closed(5s);
  CHECK(answer.bytes == reply);
  CHECK(answer.closed);
  // Not before the lull of 200 ms: the message might have gone on.
  CHECK(steady::now() - start >= 150ms);
  CHECK(server.printed(from(client) + "no newline, and I wait\n"));

  // A message that ends at EOF is answered at once, to the half-closed client.
  auto closer = plain_socket::tcp(server.port);
  REQUIRE(closer.send("bye"));
  ::shutdown(closer.fd(), SHUT_WR);
  CHECK(closer.until_closed().bytes == reply);
  CHECK(server.printed(from(closer) + "bye\n"));
  server.stop();
}

TEST_CASE("a message dripping in faster than the lull is cut off by --request-timeout",
          "[io][ack][slow]") {
  service_process server("ack", {"--request-timeout", "1"});
  auto dripper = plain_socket::tcp(server.port);
  const auto start = steady::now();
  // A byte every 20 ms, far inside the lull, until the server hangs up.
  while (steady::now() - start < 5s && dripper.send("x") && !readable(dripper.fd(), 20ms)) {
  }
  const auto answer = dripper.until_closed();
  CHECK(answer.closed);
  CHECK(answer.bytes.empty());
  CHECK(steady::now() - start < 4s);
  CHECK(server.process.out().empty());
  CHECK(server.client("ack-client").status == 0);
  server.stop();
}

TEST_CASE("1 MiB without a newline is cut at 4 KiB and answered, and the server carries on",
          "[io][ack]") {
  service_process server("ack");
  {
    auto flood = plain_socket::tcp(server.port);
    // The server closes after 4 KiB, so the rest may meet a reset.
    flood.send(std::string(1 << 20, 'x'));
    const auto answer = flood.until_closed();
    CHECK(answer.bytes == reply);
    CHECK(server.printed(from(flood) + std::string(4096, 'x') + "\n"));
  }
  auto next = server.client("ack-client", {"--message", "still here"});
  CHECK(next.status == 0);
  CHECK(server.printed(": still here\n"));
  const std::string out = server.process.out();
  CHECK(out.find(std::string(4097, 'x')) == std::string::npos);
  server.stop();
}

TEST_CASE("ack prints the peer of an IPv6 client as [::1]:PORT", "[io][ack][ipv6]") {
  service_process server("ack", {"--host", "::1"});
  REQUIRE(server.port != 0);
  auto client = plain_socket::tcp(server.port, "::1");
  REQUIRE(client.send("over IPv6\n"));
  CHECK(client.until_closed().bytes == reply);
  CHECK(server.printed(from(client, "::1") + "over IPv6\n"));
  auto ours = run_command({program(), "ack-client", "--host", "::1", "--port",
                           std::to_string(server.port), "--backend", backend_name()});
  CHECK(ours.status == 0);
  CHECK(ours.out == reply + "\n");
  server.stop();
}

TEST_CASE("ack serves a Unix path and prints the peer as unix", "[io][ack][unix]") {
  temp_dir dir;
  const std::string path = dir.file("ack.sock");
  service_process server("ack", {"--unix", path});
  auto ours = run_command({program(), "ack-client", "--unix", path, "--message", "via unix",
                           "--backend", backend_name()});
  INFO(ours.err);
  CHECK(ours.status == 0);
  CHECK(ours.out == reply + "\n");
  CHECK(server.printed("message from unix: via unix\n"));
  auto plain = plain_socket::unix_stream(path);
  REQUIRE(plain.send("plain unix\n"));
  CHECK(plain.until_closed().bytes == reply);
  CHECK(server.printed("message from unix: plain unix\n"));
  server.stop();
}

TEST_CASE("50 clients at once, and a silent one, are each acknowledged", "[io][ack][load]") {
  service_process server("ack");
  // Connected first and never speaking: it must not hold up the others.
  auto silent = plain_socket::tcp(server.port);
  std::vector<plain_socket> clients;
  for (int i = 0; i < 50; ++i) clients.push_back(plain_socket::tcp(server.port));
  for (int i = 0; i < 50; ++i) REQUIRE(clients[i].send("client " + std::to_string(i) + "\n"));
  for (int i = 0; i < 50; ++i) {
    INFO("client " << i);
    CHECK(clients[i].until_closed().bytes == reply);
    CHECK(server.printed(from(clients[i]) + "client " + std::to_string(i) + "\n"));
  }
  // Each printed line is whole: 50 lines, one per client.
  const std::string out = server.process.out();
  CHECK(std::count(out.begin(), out.end(), '\n') == 50);
  silent.close();  // else the server's drain would wait for it
  server.stop();
}

TEST_CASE("ack-client fails with status 1 when nobody listens", "[io][ack]") {
  auto nobody = plain_socket::udp();  // a port surely without a TCP listener
  REQUIRE(nobody);
  auto result = run_command({program(), "ack-client", "--port", std::to_string(nobody->local_port()),
                             "--backend", backend_name(), "--timeout", "5"});
  CHECK(result.status == 1);
}
