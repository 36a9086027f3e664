// when_any on every backend: the first awaitable to finish wins, the others
// are cancelled, and when_any returns only once every loser has resumed.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <array>
#include <stdexcept>
#include <string>
#include <vector>

#include <switchboard/net.hpp>
#include <switchboard/runtime.hpp>
#include <switchboard/time.hpp>
#include <switchboard/when_any.hpp>

#include "../support/async.hpp"
#include "../support/stream_pair.hpp"

using namespace switchboard;
using namespace std::chrono_literals;
using testing::make_pair;
using testing::run_async;

TEST_CASE("when_any: a timer beats a silent read, then data beats the timer", "[io][when_any]") {
  run_async([]() -> task<void> {
    auto pair = co_await make_pair();
    std::array<char, 16> buf{};
    auto first = co_await when_any(pair.server.read_some(buf), sleep_for(20ms));
    CHECK(first.index == 1);
    CHECK(runtime::current().in_flight() == 0);  // the cancelled read has resumed

    auto sent = co_await pair.client.write_all("ping");
    REQUIRE(sent);
    auto second = co_await when_any(pair.server.read_some(buf), sleep_for(5s));
    REQUIRE(second.index == 0);
    auto got = std::get<0>(second.value);
    REQUIRE(got);
    CHECK(std::string(buf.data(), *got) == "ping");
    CHECK(runtime::current().in_flight() == 0);  // the cancelled timer has resumed
  }());
}

TEST_CASE("when_any: the read whose data comes first wins; the loser's buffer stays untouched",
          "[io][when_any]") {
  run_async([]() -> task<void> {
    auto left = co_await make_pair();
    auto right = co_await make_pair();
    std::array<char, 16> left_buf;
    std::array<char, 16> right_buf{};
    left_buf.fill('.');
    auto delayed = [](stream& s) -> task<void> {
      co_await sleep_for(20ms);
      auto sent = co_await s.write_all("right");
      REQUIRE(sent);
    };
    runtime::current().spawn(delayed(right.client));
    auto first = co_await when_any(left.server.read_some(left_buf), right.server.read_some(right_buf));
    REQUIRE(first.index == 1);
    auto got = std::get<1>(first.value);
    REQUIRE(got);
    CHECK(std::string(right_buf.data(), *got) == "right");

    // Data for the loser after the return lands in the socket, not in its old buffer.
    auto sent = co_await left.client.write_all("left");
    REQUIRE(sent);
    co_await sleep_for(20ms);
    CHECK(std::string(left_buf.data(), left_buf.size()) == std::string(16, '.'));
    std::array<char, 16> later{};
    auto again = co_await with_timeout(5s, left.server.read_exact(std::span(later).first(4)));
    REQUIRE(again);
    CHECK(std::string(later.data(), 4) == "left");
  }());
}

TEST_CASE("when_any: tasks race too, and the winner's exception reaches the caller", "[io][when_any]") {
  run_async([]() -> task<void> {
    auto slow = []() -> task<int> {
      co_await sleep_for(5s);
      co_return 1;
    };
    auto fast = []() -> task<std::string> {
      co_await sleep_for(1ms);
      co_return "fast";
    };
    auto first = co_await when_any(slow(), fast());
    CHECK(first.index == 1);
    CHECK(std::get<1>(first.value) == "fast");

    auto failing = []() -> task<void> {
      co_await sleep_for(1ms);
      throw std::runtime_error("lost the race badly");
    };
    bool thrown = false;
    try {
      co_await when_any(slow(), failing());
    } catch (const std::runtime_error&) {
      thrown = true;
    }
    CHECK(thrown);
    CHECK(runtime::current().in_flight() == 0);
  }());
}

TEST_CASE("10,000 when_any(read, timer) cancelled at once all resume and leak no fd",
          "[io][when_any][cancel]") {
  const std::size_t fds_before = testing::open_fds(::getpid());
  run_async([]() -> task<void> {
    constexpr int count = 10'000;
    auto pair = co_await make_pair();
    int resumed = 0;
    int cancelled = 0;
    task_group racers;
    for (int i = 0; i < count; ++i) {
      racers.spawn([](stream& s, int& resumed, int& cancelled) -> task<void> {
        std::array<char, 8> buf;
        auto first = co_await when_any(s.read_some(buf), sleep_for(60s));
        ++resumed;
        if (first.index == 0 && std::get<0>(first.value).error() == std::errc::operation_canceled) {
          ++cancelled;
        } else if (first.index == 1 && std::get<1>(first.value) == std::errc::operation_canceled) {
          ++cancelled;
        }
      }(pair.server, resumed, cancelled));
    }
    co_await sleep_for(100ms);  // let every read and timer reach the backend
    CHECK(runtime::current().in_flight() == count);  // timers are not I/O in flight
    racers.cancel();
    co_await racers.join();
    CHECK(resumed == count);
    CHECK(cancelled == count);
    CHECK(runtime::current().in_flight() == 0);
  }());
  CHECK(testing::fds_back_to(::getpid(), fds_before, 0ms));
}
