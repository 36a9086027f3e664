// The server kit's connection over real loopback streams, on every backend:
// framed reads under the idle and request timeouts, and the statistics.
// (No co_await inside a Catch2 assertion: g++ 12 evaluates it more than once.)
#include <catch2/catch.hpp>

#include <string>
#include <string_view>

#include <switchboard/net.hpp>
#include <switchboard/reader.hpp>
#include <switchboard/runtime.hpp>
#include <switchboard/server.hpp>
#include <switchboard/time.hpp>

#include "../support/async.hpp"
#include "../support/stream_pair.hpp"

using namespace switchboard;
using namespace std::chrono_literals;
using testing::make_pair;
using testing::run_async;

namespace {

server_state state_with(milliseconds idle, milliseconds request) {
  server_state state;
  state.service = "test";
  state.options.limit.idle_timeout = idle;
  state.options.limit.request_timeout = request;
  return state;
}

// Writes `bytes` one byte every `gap`.
task<void> drip(stream& s, std::string bytes, clock::duration gap) {
  for (char c : bytes) {
    if (!co_await s.write_all(std::string_view(&c, 1))) co_return;
    co_await sleep_for(gap);
  }
}

}  // namespace

TEST_CASE("connection: lines are read one by one and counted, EOF between them is end_of_stream",
          "[io][kit][connection]") {
  run_async([]() -> task<void> {
    auto pair = co_await make_pair();
    server_state state = state_with(5s, 5s);
    connection conn(std::move(pair.server), state);
    auto sent = co_await pair.client.write_all("GET a\r\nGET b\n");
    REQUIRE(sent);
    REQUIRE(pair.client.shutdown_write());
    auto first = co_await conn.read_line(64);
    REQUIRE(first);
    CHECK(*first == "GET a");
    auto second = co_await conn.read_line(64);
    REQUIRE(second);
    CHECK(*second == "GET b");
    auto end = co_await conn.read_line(64);
    CHECK(end.error() == read_errc::end_of_stream);
    CHECK(state.stats.bytes_in == 13);
    CHECK_FALSE(conn.request_deadline());
  }());
}

TEST_CASE("connection: read_until frames on its delimiter and keeps what follows", "[io][kit][connection]") {
  run_async([]() -> task<void> {
    auto pair = co_await make_pair();
    server_state state = state_with(5s, 5s);
    connection conn(std::move(pair.server), state);
    auto sent = co_await pair.client.write_all("Host: x\r\n\r\nbody");
    REQUIRE(sent);
    auto head = co_await conn.read_until("\r\n\r\n", 1024);
    REQUIRE(head);
    CHECK(*head == "Host: x");
    CHECK(conn.input().pending() == "body");
  }());
}

TEST_CASE("connection: a silent client times out after the idle timeout, not the request timeout",
          "[io][kit][connection]") {
  run_async([]() -> task<void> {
    auto pair = co_await make_pair();
    server_state state = state_with(150ms, 10s);
    connection conn(std::move(pair.server), state);
    const auto start = clock::now();
    auto line = co_await conn.read_line(64);
    const auto waited = clock::now() - start;
    CHECK(line.error() == std::errc::timed_out);
    CHECK(waited >= 150ms);
    CHECK(waited < 5s);
    CHECK(state.stats.timed_out == 1);
  }());
}

TEST_CASE("connection: a line that drips in is cut at the request timeout from its first byte",
          "[io][kit][connection]") {
  run_async([]() -> task<void> {
    auto pair = co_await make_pair();
    // Each byte comes well within the idle timeout; the whole line never
    // comes within the request timeout.
    server_state state = state_with(2s, 300ms);
    connection conn(std::move(pair.server), state);
    task_group writer;
    writer.spawn(drip(pair.client, std::string(200, 'x') + "\n", 20ms));
    const auto start = clock::now();
    auto line = co_await conn.read_line(1024);
    const auto waited = clock::now() - start;
    CHECK(line.error() == std::errc::timed_out);
    CHECK(waited >= 300ms);
    CHECK(waited < 2s);
    CHECK_FALSE(conn.input().pending().empty());
    writer.cancel();
    co_await writer.join();
  }());
}

TEST_CASE("connection: each line has its own request timeout, and a wait between lines is idle time",
          "[io][kit][connection]") {
  run_async([]() -> task<void> {
    auto pair = co_await make_pair();
    server_state state = state_with(2s, 200ms);
    connection conn(std::move(pair.server), state);
    for (int i = 0; i < 3; ++i) {
      // Longer than the request timeout between lines, shorter than the idle one.
      co_await sleep_for(300ms);
      auto sent = co_await pair.client.write_all("ping\n");
      REQUIRE(sent);
      auto line = co_await conn.read_line(64);
      REQUIRE(line);
      CHECK(*line == "ping");
    }
  }());
}

TEST_CASE("connection: a request the session began itself keeps its deadline over several lines",
          "[io][kit][connection]") {
  run_async([]() -> task<void> {
    auto pair = co_await make_pair();
    server_state state = state_with(2s, 300ms);
    connection conn(std::move(pair.server), state);
    conn.begin_request();
    const auto deadline = conn.request_deadline();
    REQUIRE(deadline);
    auto sent = co_await pair.client.write_all("one\n");
    REQUIRE(sent);
    auto first = co_await conn.read_line(64);
    REQUIRE(first);
    CHECK(conn.request_deadline() == deadline);
    auto second = co_await conn.read_line(64);  // never sent: the session's deadline cuts it
    CHECK(second.error() == std::errc::timed_out);
    CHECK(clock::now() >= *deadline);
  }());
}
