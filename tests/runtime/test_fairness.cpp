#include <catch2/catch.hpp>

#include <algorithm>
#include <vector>

#include <switchboard/cancel.hpp>
#include <switchboard/runtime.hpp>

using namespace switchboard;

namespace {

// Each await completes at once, like a socket that always has data.
task<void> busy(int id, int rounds, event& always_ready, std::vector<int>& log) {
  for (int i = 0; i < rounds; ++i) {
    std::error_code ignored = co_await always_ready.wait();
    (void)ignored;
    log.push_back(id);
  }
}

task<std::vector<int>> two_busy_tasks() {
  event always_ready;
  always_ready.set();
  std::vector<int> log;
  task_group group;
  group.spawn(busy(1, 2000, always_ready, log));
  group.spawn(busy(2, 2000, always_ready, log));
  co_await group.join();
  co_return log;
}

std::size_t longest_run(const std::vector<int>& log) {
  std::size_t longest = 0;
  std::size_t run = 0;
  for (std::size_t i = 0; i < log.size(); ++i) {
    run = (i > 0 && log[i] == log[i - 1]) ? run + 1 : 1;
    longest = std::max(longest, run);
  }
  return longest;
}

task<std::vector<int>> ready_order() {
  std::vector<int> order;
  task_group group;
  for (int i = 0; i < 5; ++i) {
    group.spawn([](int id, std::vector<int>& out) -> task<void> {
      out.push_back(id);
      co_return;
    }(i, order));
  }
  co_await group.join();
  co_return order;
}

}  // namespace

TEST_CASE("a task whose awaits always complete at once yields to the others", "[unit][fairness]") {
  runtime rt;
  const std::vector<int> log = rt.run(two_busy_tasks());
  REQUIRE(log.size() == 4000);
  // The loop lets a task complete a bounded number of awaits in a row.
  CHECK(longest_run(log) <= 100);
  CHECK(std::count(log.begin(), log.begin() + 2000, 2) > 500);
}

TEST_CASE("the ready queue resumes tasks in the order they became ready", "[unit][fairness]") {
  runtime rt;
  CHECK(rt.run(ready_order()) == std::vector<int>{0, 1, 2, 3, 4});
}
