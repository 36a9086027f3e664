// PRIVATE: the tracer behind runtime_options::trace (docs/tracing.md).
//
// The loop holds a pointer to it, null when tracing is off, and every hook
// is called as `if (loop.trace) loop.trace->hook(...)`: off, a hook costs one
// well-predicted branch, no call and no allocation. The class is concrete (no
// virtual functions) and the operation record does not grow: which task an
// operation belongs to is kept here, in a map touched only when tracing.
#pragma once

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <fmt/compile.h>
#include <fmt/format.h>

#include "switchboard/detail/loop.hpp"

namespace switchboard::detail {

// A time in the file: microseconds with three decimals, printed from integer
// nanoseconds (formatting doubles was the largest cost of a traced round trip).
struct microseconds_text {
  std::int64_t ns;
};

class tracer {
 public:
  // Opens `path` for writing; throws std::system_error when it cannot.
  // Detaches itself from `loop` (loop.trace = null) once `limit` events were written.
  tracer(loop_state& loop, const std::string& path, std::size_t limit, std::string_view backend);
  // Closes the file validly (see close()).
  ~tracer();
  tracer(const tracer&) = delete;
  tracer& operator=(const tracer&) = delete;

  // A task's first run was queued as `node`.
  void task_posted(ready_node& node, std::string_view name);
  // The loop is about to run `node` / has run it.
  void before_run(ready_node& node);
  void after_run();
  // detail::start decided: `res` is -EAGAIN when `op` waits, else its result
  // (`queued`: the coroutine still yields, its completion budget spent).
  void op_started(const operation& op, int res, bool queued);
  // loop_state::complete: `op` ended with `res`; the cause set last says why.
  void op_completed(const operation& op, int res);

  // What completes operations from now on, in the backend's own words.
  void set_cause(std::string_view cause) { cause_.assign(cause); }
  template <class... Args>
  void set_cause(fmt::format_string<Args...> format, Args&&... args) {
    cause_.clear();
    fmt::format_to(std::back_inserter(cause_), format, std::forward<Args>(args)...);
  }
  // A cancel (ETIMEDOUT: a deadline) completes operations until end_cancel().
  void begin_cancel(int why) {
    saved_cause_.swap(cause_);
    cause_.assign(why == ETIMEDOUT ? "timer" : "cancel");
  }
  void end_cancel() { cause_.swap(saved_cause_); }

  // The loop's own track.
  void turn_begin();
  void timers_fired(std::size_t count) { turn_timers_ = count; }
  void wait_begin(std::optional<std::chrono::nanoseconds> timeout);
  // The backend reports how many events its wait returned (added up over reaps).
  void wait_returned(int events) { wait_events_ += events; }
  void wait_end();
  void turn_end();

  // Marks what is still open unfinished and ends the JSON; idempotent.
  void close(std::string_view why = {});

 private:
  using time_point = std::chrono::steady_clock::time_point;

  struct track {
    std::uint32_t tid;
    std::string name;
  };
  // A task suspended on an operation (or queued for its first run).
  struct pending {
    std::uint32_t task;
    bool first_run = false;
    bool completed = false;
    bool stretch_over = false;  // the running stretch that suspended has ended
    time_point begin{};
    time_point end{};
    std::string label;
    std::string result;
    std::string event;
    std::uint64_t flow = 0;
  };

  std::uint32_t new_track(std::string_view name);
  microseconds_text micros(time_point t) const;
  void emit_suspension(const pending& p, bool unfinished);
  void write_event(std::string_view json);
  void count_event();

  loop_state& loop_;
  std::FILE* file_ = nullptr;
  std::size_t limit_;
  std::size_t events_ = 0;
  time_point origin_;
  std::string backend_;
  fmt::memory_buffer line_;  // the event being written
  std::string cause_;  // what completes operations now
  std::string saved_cause_;  // ... outside the cancel being handled
  std::vector<track> tracks_;
  std::unordered_map<const ready_node*, pending> waiting_;
  // The running stretch: whose, since when, and the suspension it ended in.
  std::optional<std::uint32_t> current_;
  time_point run_begin_{};
  const ready_node* suspended_on_ = nullptr;
  std::uint32_t unnamed_ = 0;
  std::optional<std::uint32_t> outside_;
  std::uint64_t next_flow_ = 1;
  // The loop turn being recorded.
  time_point turn_begin_{};
  time_point wait_begin_{};
  std::optional<std::chrono::nanoseconds> wait_timeout_;
  std::size_t turn_timers_ = 0;
  std::size_t turn_resumed_ = 0;
  int wait_events_ = 0;
  bool in_wait_ = false;
};

}  // namespace switchboard::detail

template <>
struct fmt::formatter<switchboard::detail::microseconds_text> {
  constexpr auto parse(format_parse_context& ctx) { return ctx.begin(); }
  template <typename Context>
  auto format(switchboard::detail::microseconds_text t, Context& ctx) const {
    return fmt::format_to(ctx.out(), FMT_COMPILE("{}.{:03}"), t.ns / 1000, t.ns % 1000);
  }
};
