// The buffered reader over real loopback streams, on every backend.
#include <catch2/catch.hpp>

#include <string>
#include <string_view>

#include <switchboard/net.hpp>
#include <switchboard/reader.hpp>
#include <switchboard/runtime.hpp>
#include <switchboard/time.hpp>

#include "../support/async.hpp"
#include "../support/stream_pair.hpp"

using namespace switchboard;
using namespace std::chrono_literals;
using testing::make_pair;
using testing::run_async;

namespace {

// Writes `bytes` one piece of `piece` bytes at a time, each its own read on the other side.
task<void> dribble(stream& s, std::string bytes, std::size_t piece) {
  for (std::size_t at = 0; at < bytes.size(); at += piece) {
    auto sent = co_await s.write_all(std::string_view(bytes).substr(at, piece));
    REQUIRE(sent);
    co_await sleep_for(2ms);
  }
}

}  // namespace

TEST_CASE("reader: a line split over many reads comes whole", "[io][reader]") {
  run_async([]() -> task<void> {
    auto pair = co_await make_pair();
    task_group writer;
    writer.spawn(dribble(pair.client, "hello, world\nsecond\n", 1));
    reader in(pair.server);
    auto first = co_await in.read_line(64);
    REQUIRE(first);
    CHECK(*first == "hello, world");
    auto second = co_await in.read_line(64);
    REQUIRE(second);
    CHECK(*second == "second");
    co_await writer.join();
  }());
}

TEST_CASE("reader: several lines in one read are returned one by one, LF and CRLF alike", "[io][reader]") {
  run_async([]() -> task<void> {
    auto pair = co_await make_pair();
    auto sent = co_await pair.client.write_all("one\r\ntwo\n\r\nthree\r\r\n");
    REQUIRE(sent);
    pair.client.close();
    reader in(pair.server);
    for (std::string_view want : {"one", "two", "", "three\r"}) {
      auto line = co_await in.read_line(64);
      REQUIRE(line);
      CHECK(*line == want);
    }
    auto end = co_await in.read_line(64);
    CHECK(end.error() == read_errc::end_of_stream);
  }());
}

TEST_CASE("reader: a line of the maximum length is read, one byte more is too long and stays pending",
          "[io][reader]") {
  run_async([]() -> task<void> {
    for (std::string_view ending : {"\n", "\r\n"}) {
      auto pair = co_await make_pair();
      const std::string longest(64, 'x');
      auto sent = co_await pair.client.write_all(longest + std::string(ending) + "y" + longest + std::string(ending));
      REQUIRE(sent);
      reader in(pair.server);
      auto fits = co_await in.read_line(64);
      REQUIRE(fits);
      CHECK(*fits == longest);
      auto over = co_await in.read_line(64);
      CHECK(over.error() == read_errc::too_long);
      CHECK(in.pending().substr(0, 65) == "y" + longest);
    }
  }());
}

TEST_CASE("reader: a peer sending without end is cut off at the maximum, not buffered", "[io][reader]") {
  run_async([]() -> task<void> {
    auto pair = co_await make_pair();
    task_group writer;
    writer.spawn([](stream& s) -> task<void> {
      const std::string chunk(64 * 1024, 'z');
      for (int i = 0; i < 16; ++i) {
        auto sent = co_await s.write_all(chunk);
        if (!sent) break;
      }
    }(pair.client));
    reader in(pair.server);
    auto line = co_await in.read_line(4096);
    CHECK(line.error() == read_errc::too_long);
    CHECK(in.pending().size() <= 4096 + 2);
    CHECK(in.pending().size() >= 4096);
    pair.server.close();
    co_await writer.join();
  }());
}

TEST_CASE("reader: the stream ending mid-line is truncated, with the bytes pending", "[io][reader]") {
  run_async([]() -> task<void> {
    auto pair = co_await make_pair();
    auto sent = co_await pair.client.write_all("complete\npartial");
    REQUIRE(sent);
    pair.client.close();
    reader in(pair.server);
    auto first = co_await in.read_line(64);
    REQUIRE(first);
    CHECK(*first == "complete");
    auto cut = co_await in.read_line(64);
    CHECK(cut.error() == read_errc::truncated);
    CHECK(in.pending() == "partial");
    in.consume(in.pending().size());
    auto end = co_await in.read_line(64);
    CHECK(end.error() == read_errc::end_of_stream);
  }());
}

TEST_CASE("reader: a timeout mid-line keeps the bytes, and the line completes on a later read", "[io][reader]") {
  run_async([]() -> task<void> {
    auto pair = co_await make_pair();
    auto sent = co_await pair.client.write_all("half a ");
    REQUIRE(sent);
    reader in(pair.server);
    auto late = co_await with_timeout(50ms, in.read_line(64));
    CHECK(late.error() == std::errc::timed_out);
    CHECK(in.pending() == "half a ");
    auto rest = co_await pair.client.write_all("line\n");
    REQUIRE(rest);
    auto line = co_await with_timeout(2s, in.read_line(64));
    REQUIRE(line);
    CHECK(*line == "half a line");
  }());
}

TEST_CASE("reader: a delimiter that is not a newline, split across reads, and counted bytes after it",
          "[io][reader]") {
  run_async([]() -> task<void> {
    auto pair = co_await make_pair();
    task_group writer;
    // An HTTP/1.1-like head, then a body of a known length, in 3-byte pieces.
    writer.spawn(dribble(pair.client, "GET / HTTP/1.1\r\nHost: x\r\n\r\nBODY;tail;", 3));
    reader in(pair.server);
    auto head = co_await in.read_until("\r\n\r\n", 1024);
    REQUIRE(head);
    CHECK(*head == "GET / HTTP/1.1\r\nHost: x");
    auto body = co_await in.read_exact(4);
    REQUIRE(body);
    CHECK(*body == "BODY");
    auto field = co_await in.read_until(";", 16);
    REQUIRE(field);
    CHECK(field->empty());
    auto last = co_await in.read_until(";", 16);
    REQUIRE(last);
    CHECK(*last == "tail");
    co_await writer.join();
  }());
}
