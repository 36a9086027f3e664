#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>

#include <switchboard/cancel.hpp>
#include <switchboard/runtime.hpp>

using namespace switchboard;

namespace {

task<int> answer() { co_return 42; }

task<std::string> greeting(std::string name) { co_return "hello " + name; }

task<int> fails() {
  throw std::runtime_error("boom");
  co_return 0;
}

task<int> depth(int n) {
  if (n == 0) co_return 0;
  co_return 1 + co_await depth(n - 1);
}

task<long> sum_of_immediate_tasks(int count) {
  long total = 0;
  for (int i = 0; i < count; ++i) total += co_await answer();
  co_return total;
}

task<int> count_set_event_waits(int count) {
  event ready;
  ready.set();
  int waited = 0;
  for (int i = 0; i < count; ++i) {
    const std::error_code error = co_await ready.wait();
    if (!error) ++waited;
  }
  co_return waited;
}

task<int> add_after(task<int> inner, int extra) { co_return co_await std::move(inner) + extra; }

}  // namespace

TEST_CASE("a task returns its value to the awaiter", "[unit][task]") {
  runtime rt;
  CHECK(rt.run(answer()) == 42);
  CHECK(rt.run(greeting("switchboard")) == "hello switchboard");
}

TEST_CASE("an exception thrown in a task reaches the awaiter", "[unit][task]") {
  runtime rt;
  CHECK_THROWS_WITH(rt.run(fails()), "boom");
}

TEST_CASE("an exception propagates through nested awaits", "[unit][task]") {
  runtime rt;
  CHECK_THROWS_WITH(rt.run(add_after(fails(), 1)), "boom");
  CHECK(rt.run(add_after(answer(), 1)) == 43);
}

TEST_CASE("a task does nothing until it is awaited", "[unit][task]") {
  bool ran = false;
  auto lazy = [](bool& flag) -> task<void> {
    flag = true;
    co_return;
  };
  {
    task<void> t = lazy(ran);
    CHECK_FALSE(ran);
  }
  CHECK_FALSE(ran);
}

TEST_CASE("100,000 nested awaits do not overflow the stack", "[unit][task]") {
  runtime rt;
  CHECK(rt.run(depth(100'000)) == 100'000);
}

TEST_CASE("a million synchronously completing awaits do not overflow the stack", "[unit][task]") {
  runtime rt;
  CHECK(rt.run(sum_of_immediate_tasks(1'000'000)) == 42'000'000);
  CHECK(rt.run(count_set_event_waits(1'000'000)) == 1'000'000);
}

TEST_CASE("a moved-from task is empty and a moved-to task runs", "[unit][task]") {
  runtime rt;
  task<int> a = answer();
  task<int> b = std::move(a);
  CHECK_FALSE(a);
  CHECK(b);
  CHECK(rt.run(std::move(b)) == 42);
}
