// Waiting for the first of several awaitables (operations or tasks).
//
//   std::array<char, 64> a, b;
//   auto first = co_await when_any(left.read_some(a), right.read_some(b), sleep_for(1s));
//   if (first.index == 0) { auto n = std::get<0>(first.value); ... }
//
// Each awaitable runs as a task of its own in a group under the caller's
// scope. The first to finish wins; the others are cancelled, and when_any
// returns only after every one of them has resumed (after the kernel's own
// answer), so their buffers are free again once it returns. A loser that
// completed anyway before its cancellation took effect has its value
// dropped: give each contender its own buffer. An exception thrown by the
// winner is rethrown by when_any.
#pragma once

#include <cstddef>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

#include "switchboard/cancel.hpp"
#include "switchboard/task.hpp"

namespace switchboard {

namespace detail {

template <class A>
decltype(auto) awaiter_of(A&& a) {
  if constexpr (requires { std::forward<A>(a).operator co_await(); }) {
    return std::forward<A>(a).operator co_await();
  } else {
    return std::forward<A>(a);
  }
}

template <class R>
using value_or_monostate = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

// What `co_await a` yields, with void as std::monostate.
template <class A>
using await_value_t = value_or_monostate<decltype(awaiter_of(std::declval<A>()).await_resume())>;

}  // namespace detail

template <class... T>
struct when_any_result {
  std::size_t index;  // the position of the winner among when_any's arguments
  std::variant<T...> value;  // its value, at that same index
};

namespace detail {

template <class Result>
struct when_any_race {
  explicit when_any_race(task_group& g) noexcept : group(g) {}

  using value_type = decltype(Result::value);
  task_group& group;
  std::optional<Result> winner;
  std::exception_ptr error;
  bool decided = false;

  // Only the first call takes effect: it cancels everyone else.
  bool claim() noexcept {
    if (decided) return false;
    decided = true;
    group.cancel();
    return true;
  }
};

template <std::size_t I, class Result, class A>
task<void> when_any_contender(when_any_race<Result>& race, A awaitable) {
  using value_type = typename when_any_race<Result>::value_type;
  try {
    using R = decltype(awaiter_of(std::move(awaitable)).await_resume());
    if constexpr (std::is_void_v<R>) {
      co_await std::move(awaitable);
      if (race.claim()) race.winner.emplace(Result{I, value_type(std::in_place_index<I>)});
    } else {
      auto value = co_await std::move(awaitable);
      if (race.claim()) race.winner.emplace(Result{I, value_type(std::in_place_index<I>, std::move(value))});
    }
  } catch (...) {
    if (race.claim()) race.error = std::current_exception();
  }
}

}  // namespace detail

template <class... A>
  requires(sizeof...(A) > 0)
task<when_any_result<detail::await_value_t<A>...>> when_any(A... awaitables) {
  using result_type = when_any_result<detail::await_value_t<A>...>;
  task_group group(co_await this_scope());
  detail::when_any_race<result_type> race(group);
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    (group.spawn(detail::when_any_contender<I>(race, std::move(awaitables)), "when_any"), ...);
  }(std::index_sequence_for<A...>{});
  co_await group.join();
  if (race.error) std::rethrow_exception(race.error);
  co_return std::move(*race.winner);
}

}  // namespace switchboard
