#include "async.hpp"

#include <catch2/catch.hpp>
#include <switchboard/time.hpp>

namespace switchboard::testing {
namespace {

backend_kind chosen = backend_kind::select;

task<bool> bounded(task<void> body, std::chrono::milliseconds limit) {
  deadline_scope scope(co_await this_scope(), clock::now() + limit);
  co_await in_scope(scope, std::move(body));
  co_return scope.expired();
}

}  // namespace

void set_backend(backend_kind kind) { chosen = kind; }
backend_kind backend() { return chosen; }
std::string backend_name() { return std::string(to_string(chosen)); }

void run_async(task<void> body, std::chrono::milliseconds limit) {
  runtime rt(chosen);
  const bool expired = rt.run(bounded(std::move(body), limit));
  INFO("the test body ran past its " << limit.count() << " ms deadline");
  REQUIRE_FALSE(expired);
  REQUIRE(rt.in_flight() == 0);
}

}  // namespace switchboard::testing
