#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <switchboard/result.hpp>
#include <switchboard/runtime.hpp>
#include <switchboard/time.hpp>

using namespace switchboard;
using namespace std::chrono_literals;

namespace {

struct fake_timer : detail::timer_node {
  int id = 0;
};

task<void> sleep_then_record(clock::duration delay, int id, std::vector<int>& order) {
  co_await sleep_for(delay);
  order.push_back(id);
}

task<std::vector<int>> sleepers_in_deadline_order() {
  std::vector<int> order;
  task_group sleepers;
  sleepers.spawn(sleep_then_record(30ms, 3, order));
  sleepers.spawn(sleep_then_record(10ms, 1, order));
  sleepers.spawn(sleep_then_record(20ms, 2, order));
  co_await sleepers.join();
  co_return order;
}

task<std::error_code> sleep_in_cancelled_scope() {
  cancel_scope scope(co_await this_scope());
  scope.cancel();
  co_return co_await in_scope(scope, [](void) -> task<std::error_code> {
    co_return co_await sleep_for(10s);
  }());
}

task<std::error_code> wait_with_deadline(event& never) {
  co_return co_await with_timeout(20ms, never.wait());
}

task<bool> deadline_on_task_cancels_inner_sleep() {
  auto slow = []() -> task<std::error_code> { co_return co_await sleep_for(10s); };
  std::error_code inner = co_await with_timeout(20ms, slow());
  co_return inner == std::errc::timed_out;
}

// How long an operation made with a 50 ms timeout waits when it is awaited
// only 100 ms after it was made.
task<clock::duration> timeout_made_early(event& never) {
  auto wait = with_timeout(50ms, never.wait());
  (void)co_await sleep_for(100ms);
  const auto start = clock::now();
  (void)co_await wait;
  co_return clock::now() - start;
}

}  // namespace

TEST_CASE("the timer heap yields deadlines in order on a fake clock", "[unit][timer]") {
  detail::timer_heap heap;
  const clock::time_point t0{};
  std::vector<fake_timer> timers(8);
  const int offsets[] = {50, 10, 70, 30, 20, 80, 60, 40};
  for (int i = 0; i < 8; ++i) {
    timers[i].id = offsets[i];
    timers[i].when = t0 + std::chrono::milliseconds(offsets[i]);
    heap.push(timers[i]);
  }
  heap.remove(timers[2]);  // 70 leaves before its time
  CHECK_FALSE(timers[2].armed());
  CHECK(heap.pop_expired(t0 + 5ms) == nullptr);
  std::vector<int> fired;
  while (auto* t = heap.pop_expired(t0 + 65ms)) fired.push_back(static_cast<fake_timer*>(t)->id);
  CHECK(fired == std::vector<int>{10, 20, 30, 40, 50, 60});
  CHECK(heap.size() == 1);
  CHECK(static_cast<fake_timer*>(heap.top())->id == 80);
}

TEST_CASE("the timer heap survives removing every element in arbitrary order", "[unit][timer]") {
  detail::timer_heap heap;
  std::vector<fake_timer> timers(100);
  for (int i = 0; i < 100; ++i) {
    timers[i].when = clock::time_point{} + std::chrono::milliseconds((i * 37) % 101);
    heap.push(timers[i]);
  }
  for (int i = 0; i < 100; i += 3) heap.remove(timers[i]);
  clock::time_point last{};
  std::size_t popped = 0;
  while (auto* t = heap.pop_expired(clock::time_point::max())) {
    CHECK(t->when >= last);
    last = t->when;
    ++popped;
  }
  CHECK(popped == 100 - 34);
}

TEST_CASE("a timer pushed after the heap's earliest can still be the earliest", "[unit][timer]") {
  detail::timer_heap heap;
  const clock::time_point t0{};
  fake_timer late, early, staged_then_removed;
  late.when = t0 + 50ms;
  early.when = t0 + 10ms;
  staged_then_removed.when = t0 + 5ms;
  heap.push(late);
  CHECK(heap.pop_expired(t0) == nullptr);  // `late` now sits in the heap proper
  heap.push(early);
  heap.push(staged_then_removed);
  CHECK(heap.top() == &staged_then_removed);
  heap.remove(staged_then_removed);
  CHECK_FALSE(staged_then_removed.armed());
  CHECK(heap.top() == &early);
  CHECK(heap.size() == 2);
  CHECK(heap.pop_expired(t0 + 20ms) == &early);
  CHECK(heap.pop_expired(t0 + 20ms) == nullptr);
  CHECK(heap.pop_expired(t0 + 50ms) == &late);
  CHECK(heap.empty());
}

TEST_CASE("an operation's timeout runs from when it starts to wait", "[unit][timer]") {
  runtime rt;
  event never;
  const clock::duration waited = rt.run(timeout_made_early(never));
  CHECK(waited >= 45ms);
  CHECK(waited < 5s);
}

TEST_CASE("sleeping tasks wake in deadline order, not start order", "[unit][timer]") {
  runtime rt;
  CHECK(rt.run(sleepers_in_deadline_order()) == std::vector<int>{1, 2, 3});
}

TEST_CASE("a sleep in a cancelled scope ends at once with operation_canceled", "[unit][timer]") {
  runtime rt;
  const auto start = clock::now();
  CHECK(rt.run(sleep_in_cancelled_scope()) == std::errc::operation_canceled);
  CHECK(clock::now() - start < 1s);
}

TEST_CASE("a wait with a deadline ends with timed_out", "[unit][timer]") {
  runtime rt;
  event never;
  CHECK(rt.run(wait_with_deadline(never)) == std::errc::timed_out);
}

TEST_CASE("a deadline on a task cancels the operation inside it", "[unit][timer]") {
  runtime rt;
  CHECK(rt.run(deadline_on_task_cancels_inner_sleep()));
}

namespace {
task<int> join_from_cancelled_scope() {
  cancel_scope* outer = co_await this_scope();
  int finished = 0;
  task_group members(outer);
  members.spawn([](int& done) -> task<void> {
    // Cancelled with the group: the sleep ends early, the task still runs on.
    (void)co_await sleep_for(10s);
    co_await sleep_for(0s);
    ++done;
  }(finished));
  outer->cancel();
  co_await members.join();
  co_return finished;
}
}  // namespace

TEST_CASE("joining a group from a cancelled task still waits for its members", "[unit][cancel]") {
  runtime rt;
  CHECK(rt.run(join_from_cancelled_scope()) == 1);
}

namespace {
task<void> join_with_deadline() {
  task_group group;
  group.spawn([]() -> task<void> { co_await sleep_for(50ms); }());
  // Awaited outside the assertions, which g++ 12 would evaluate more than once.
  const bool early = co_await with_timeout(5ms, group.join());
  CHECK_FALSE(early);  // the deadline came first
  const bool later = co_await with_timeout(5s, group.join());
  CHECK(later);  // then the group emptied
  CHECK(group.size() == 0);
}
}  // namespace

TEST_CASE("a join under a deadline says whether the group emptied", "[unit][cancel]") {
  runtime rt;
  rt.run(join_with_deadline());
}

TEST_CASE("a const result gives its value through * and ->", "[unit]") {
  const result<std::string> held(std::string("value"));
  CHECK(*held == "value");
  CHECK(held->size() == 5);
}
