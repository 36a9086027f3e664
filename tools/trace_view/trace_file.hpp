// A trace file as trace-view draws it: the runtime's Chrome trace-event JSON
// (docs/tracing.md, "The file") read into tracks of slices and instants.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace switchboard::tools::trace_view {

// What a reader accepts; past a limit the file is refused, not cut.
struct trace_limits {
  std::size_t max_bytes = std::size_t{512} << 20;
  std::size_t max_depth = 64;
  std::size_t max_events = 5'000'000;
};

enum class slice_kind {
  running,    // a task's running stretch ("running")
  wait,       // a task's suspension (cat "wait")
  turn,       // a loop turn (cat "loop", "turn")
  loop_wait,  // the backend's wait inside a turn (cat "loop", "epoll wait"...)
  other,      // any other complete event
};

// An `X` event; times in microseconds, as in the file.
struct slice {
  double ts = 0;
  double dur = 0;
  slice_kind kind = slice_kind::other;
  std::string name;
  std::string result;  // args.result, or empty
  std::string event;   // args.event, or empty
  bool unfinished = false;
  double end() const { return ts + dur; }
};

// An `i` event.
struct instant {
  double ts = 0;
  std::string name;
  std::string result;
  std::string event;
};

// One tid: its name (thread_name, or "tid N"), its place and its events,
// each sorted by time.
struct track {
  std::uint64_t tid = 0;
  std::string name;
  std::optional<double> sort_index;
  std::vector<slice> slices;
  std::vector<instant> instants;
};

// A flow arrow (`s` then `f` with the same id): from the completion to the
// running stretch it led to.
struct flow {
  double from_ts = 0;
  std::uint64_t from_tid = 0;
  double to_ts = 0;
  std::uint64_t to_tid = 0;
};

struct trace {
  std::string process;            // process_name, or empty
  std::vector<track> tracks;      // task tracks in display order, the loop (tid 0) last
  std::vector<instant> global;    // instants of global scope ("s":"g"): the limit, a second signal
  std::vector<flow> flows;
  double begin = 0;               // the earliest time of any event (0 when none)
  double end = 0;                 // the latest end of any event
  std::size_t events = 0;         // events read
  bool has_times = false;         // some event carries a time
  // Set when the file ended before its closing "]}" (a program killed by
  // SIGKILL): the events before the cut were read, the one cut dropped.
  std::optional<std::string> cut_short;
};

// Why a file cannot be drawn: one line, without the file's name.
class trace_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Reads a trace from `text`; throws trace_error.
trace read_trace(std::string_view text, const trace_limits& limits = {});

// Reads the file at `path` (refusing one over limits.max_bytes before
// reading it all); throws trace_error.
trace read_trace_file(const std::string& path, const trace_limits& limits = {});

// "512 MiB", "3 KiB", "17 B".
std::string size_text(std::size_t bytes);

}  // namespace switchboard::tools::trace_view
