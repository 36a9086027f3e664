#include "trace_view/trace_file.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <unordered_map>

#include <fmt/core.h>

#include "trace_view/json.hpp"

namespace switchboard::tools::trace_view {

namespace {

// Times past this (about 31 years in microseconds) are not a program's trace,
// and would lose the precision the drawing needs.
constexpr double max_time = 1e15;
// The largest tid kept exact in a double.
constexpr double max_tid = 9007199254740992.0;

const char* type_name(const json_value& v) {
  switch (v.type) {
    case json_value::kind::null: return "null";
    case json_value::kind::boolean: return "a boolean";
    case json_value::kind::number: return "a number";
    case json_value::kind::string: return "a string";
    case json_value::kind::array: return "an array";
    case json_value::kind::object: return "an object";
  }
  return "?";
}

// Turns one event (a JSON object) into the model, or says what is wrong.
class builder {
 public:
  explicit builder(trace& out) : out_(out) {}

  // Returns an error message, or empty.
  std::string add(const json_value& e) {
    try {
      add_event(e);
      return {};
    } catch (const trace_error& error) {
      return error.what();
    }
  }

  void finish() {
    std::vector<track> tasks;
    std::optional<track> loop;
    for (track& t : tracks_) {
      std::stable_sort(t.slices.begin(), t.slices.end(),
                       [](const slice& a, const slice& b) { return a.ts < b.ts; });
      std::stable_sort(t.instants.begin(), t.instants.end(),
                       [](const instant& a, const instant& b) { return a.ts < b.ts; });
      if (t.name.empty()) t.name = t.tid == 0 ? "loop" : fmt::format("tid {}", t.tid);
      if (t.tid == 0) {
        loop = std::move(t);
      } else {
        tasks.push_back(std::move(t));
      }
    }
    // thread_sort_index first (the tid where there is none), then the tid: as Perfetto orders them.
    std::stable_sort(tasks.begin(), tasks.end(), [](const track& a, const track& b) {
      const double ka = a.sort_index.value_or(static_cast<double>(a.tid));
      const double kb = b.sort_index.value_or(static_cast<double>(b.tid));
      if (ka != kb) return ka < kb;
      return a.tid < b.tid;
    });
    if (loop) tasks.push_back(std::move(*loop));
    out_.tracks = std::move(tasks);
    std::stable_sort(out_.global.begin(), out_.global.end(),
                     [](const instant& a, const instant& b) { return a.ts < b.ts; });
    if (!out_.has_times) out_.begin = out_.end = 0;
  }

 private:
  trace& out_;
  std::vector<track> tracks_;
  std::unordered_map<std::uint64_t, std::size_t> index_;
  std::unordered_map<std::string, std::pair<double, std::uint64_t>> flow_starts_;

  [[noreturn]] static void bad(const std::string& what) { throw trace_error(what); }

  static const json_value& need(const json_value& e, std::string_view ph, std::string_view key) {
    const json_value* v = e.find(key);
    if (!v) bad(fmt::format("a \"{}\" event without \"{}\"", ph, key));
    return *v;
  }

  static double number(const json_value& e, std::string_view ph, std::string_view key) {
    const json_value& v = need(e, ph, key);
    if (!v.is_number()) bad(fmt::format("\"{}\" is {}, not a number", key, type_name(v)));
    if (std::fabs(v.number) > max_time) bad(fmt::format("\"{}\" is out of range ({:g})", key, v.number));
    return v.number;
  }

  static const std::string& text(const json_value& e, std::string_view ph, std::string_view key) {
    const json_value& v = need(e, ph, key);
    if (!v.is_string()) bad(fmt::format("\"{}\" is {}, not a string", key, type_name(v)));
    return v.text;
  }

  // An optional string member: empty when absent, an error when not a string.
  static std::string optional_text(const json_value* parent, std::string_view key) {
    if (!parent) return {};
    const json_value* v = parent->find(key);
    if (!v) return {};
    if (!v->is_string()) bad(fmt::format("\"{}\" is {}, not a string", key, type_name(*v)));
    return v->text;
  }

  static const json_value* args(const json_value& e) {
    const json_value* a = e.find("args");
    if (a && !a->is_object()) bad(fmt::format("\"args\" is {}, not an object", type_name(*a)));
    return a;
  }

  static std::uint64_t tid(const json_value& e, std::string_view ph) {
    const json_value& v = need(e, ph, "tid");
    if (!v.is_number()) bad(fmt::format("\"tid\" is {}, not a number", type_name(v)));
    if (v.number < 0 || v.number > max_tid || std::floor(v.number) != v.number) {
      bad(fmt::format("\"tid\" is not a whole number from 0 to 2^53 ({:g})", v.number));
    }
    return static_cast<std::uint64_t>(v.number);
  }

  track& at(std::uint64_t id) {
    const auto [where, added] = index_.try_emplace(id, tracks_.size());
    if (added) {
      tracks_.emplace_back();
      tracks_.back().tid = id;
    }
    return tracks_[where->second];
  }

  void saw_time(double from, double to) {
    if (!out_.has_times) {
      out_.begin = from;
      out_.end = to;
      out_.has_times = true;
      return;
    }
    out_.begin = std::min(out_.begin, from);
    out_.end = std::max(out_.end, to);
  }

  void add_event(const json_value& e) {
    if (!e.is_object()) bad(fmt::format("the event is {}, not an object", type_name(e)));
    const json_value* ph_value = e.find("ph");
    if (!ph_value) bad("an event without \"ph\"");
    if (!ph_value->is_string()) bad(fmt::format("\"ph\" is {}, not a string", type_name(*ph_value)));
    const std::string& ph = ph_value->text;
    if (ph == "M") return metadata(e);
    if (ph == "X") return complete(e);
    if (ph == "i" || ph == "I") return at_once(e, ph);
    if (ph == "s" || ph == "f") return flow_end(e, ph);
    // B/E, counters, async events...: the runtime writes none; other tools' are skipped.
  }

  void metadata(const json_value& e) {
    const std::string& name = text(e, "M", "name");
    if (name == "thread_name") {
      const std::uint64_t id = tid(e, "M");
      const json_value* a = args(e);
      if (!a) bad("a thread_name event without \"args\"");
      at(id).name = text(*a, "M", "name");
    } else if (name == "thread_sort_index") {
      const std::uint64_t id = tid(e, "M");
      const json_value* a = args(e);
      if (!a) bad("a thread_sort_index event without \"args\"");
      at(id).sort_index = number(*a, "M", "sort_index");
    } else if (name == "process_name") {
      const json_value* a = args(e);
      if (!a) bad("a process_name event without \"args\"");
      out_.process = text(*a, "M", "name");
    }
  }

  void complete(const json_value& e) {
    slice s;
    const std::uint64_t id = tid(e, "X");
    s.ts = number(e, "X", "ts");
    s.dur = number(e, "X", "dur");
    if (s.dur < 0) bad(fmt::format("\"dur\" is negative ({:g})", s.dur));
    s.name = text(e, "X", "name");
    const std::string cat = optional_text(&e, "cat");
    if (cat == "wait") {
      s.kind = slice_kind::wait;
    } else if (cat == "loop") {
      s.kind = s.name == "turn" ? slice_kind::turn : slice_kind::loop_wait;
    } else if (s.name == "running") {
      s.kind = slice_kind::running;
    }
    const json_value* a = args(e);
    s.result = optional_text(a, "result");
    s.event = optional_text(a, "event");
    if (const json_value* u = a ? a->find("unfinished") : nullptr) {
      if (u->type != json_value::kind::boolean) bad(fmt::format("\"unfinished\" is {}, not a boolean", type_name(*u)));
      s.unfinished = u->boolean;
    }
    saw_time(s.ts, s.end());
    at(id).slices.push_back(std::move(s));
  }

  void at_once(const json_value& e, const std::string& ph) {
    instant i;
    i.ts = number(e, ph, "ts");
    i.name = text(e, ph, "name");
    const json_value* a = args(e);
    i.result = optional_text(a, "result");
    i.event = optional_text(a, "event");
    const std::string scope = optional_text(&e, "s");
    saw_time(i.ts, i.ts);
    if (scope == "g" || scope == "p") {
      out_.global.push_back(std::move(i));
    } else {
      at(tid(e, ph)).instants.push_back(std::move(i));
    }
  }

  void flow_end(const json_value& e, const std::string& ph) {
    const json_value& id_value = need(e, ph, "id");
    std::string id;
    if (id_value.is_number()) {
      id = fmt::format("{}", id_value.number);
    } else if (id_value.is_string()) {
      id = "\"" + id_value.text;
    } else {
      bad(fmt::format("\"id\" is {}, not a number or a string", type_name(id_value)));
    }
    const std::uint64_t where = tid(e, ph);
    const double ts = number(e, ph, "ts");
    saw_time(ts, ts);
    at(where);
    if (ph == "s") {
      flow_starts_[id] = {ts, where};
      return;
    }
    const auto start = flow_starts_.find(id);
    if (start == flow_starts_.end()) return;  // its start was not written: nothing to draw
    out_.flows.push_back({start->second.first, start->second.second, ts, where});
    flow_starts_.erase(start);
  }
};

}  // namespace

std::string size_text(std::size_t bytes) {
  if (bytes >= (std::size_t{1} << 20) && bytes % (std::size_t{1} << 20) == 0) return fmt::format("{} MiB", bytes >> 20);
  if (bytes >= (std::size_t{1} << 20)) return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20));
  if (bytes >= 1024 && bytes % 1024 == 0) return fmt::format("{} KiB", bytes >> 10);
  return fmt::format("{} B", bytes);
}

trace read_trace(std::string_view text, const trace_limits& limits) {
  if (text.size() > limits.max_bytes) {
    throw trace_error(fmt::format("the file is {}, over the {} limit", size_text(text.size()), size_text(limits.max_bytes)));
  }
  trace out;
  builder build(out);
  json_reader reader(text, limits.max_depth);
  bool in_events = false;
  bool saw_events = false;
  std::size_t event_start = 0;

  // The events array, element by element: each is turned into the model at once.
  const auto read_events = [&] {
    saw_events = true;
    in_events = true;
    if (!reader.accept(']')) {
      do {
        reader.peek();  // past the whitespace: the event's own line
        event_start = reader.offset();
        const json_value event = reader.value();
        if (++out.events > limits.max_events) {
          throw trace_error(fmt::format("more than {} events", limits.max_events));
        }
        if (const std::string error = build.add(event); !error.empty()) {
          throw trace_error(fmt::format("line {}: event {}: {}", line_of(text, event_start), out.events, error));
        }
      } while (reader.accept(','));
      reader.expect(']', "',' or ']' after an event");
    }
    in_events = false;
  };

  try {
    if (reader.at_end()) throw trace_error("the file is empty");
    if (reader.accept('[')) {
      // The trace-event format also allows a bare array of events.
      read_events();
    } else {
      reader.expect('{', "'{' (a trace is a JSON object with a \"traceEvents\" array)");
      if (!reader.accept('}')) {
        do {
          const std::string key = reader.string();
          reader.expect(':', "':' after a member name");
          if (key == "traceEvents") {
            if (reader.peek() != '[') throw trace_error("\"traceEvents\" is not an array");
            reader.expect('[', "'['");
            read_events();
          } else {
            reader.value();  // displayTimeUnit, metadata...: not drawn
          }
        } while (reader.accept(','));
        reader.expect('}', "',' or '}' after a member of the trace");
      }
    }
    if (!reader.at_end()) {
      throw trace_error(fmt::format("line {}: more text after the trace's closing brace", line_of(text, reader.offset())));
    }
  } catch (const json_error& error) {
    // A file cut short (SIGKILL, a crash) ends in the middle of its events:
    // what came before the cut is drawn, with a warning.
    if (!error.at_end() || !saw_events || out.events == 0) {
      throw trace_error(fmt::format("line {}: {}{}", line_of(text, error.offset()), error.what(),
                                    error.at_end() ? " (the file is cut short)" : ""));
    }
    out.cut_short = in_events
        ? fmt::format("the file is cut short (line {}): drawing the {} events before the cut", line_of(text, event_start),
                      out.events)
        : fmt::format("the file is cut short after its events (no closing '}}')");
  }
  if (!saw_events) throw trace_error("no \"traceEvents\" array");
  build.finish();
  return out;
}

trace read_trace_file(const std::string& path, const trace_limits& limits) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rbe"), &std::fclose);
  if (!file) throw trace_error(fmt::format("cannot open: {}", std::strerror(errno)));
  struct stat info {};
  if (::fstat(::fileno(file.get()), &info) == 0) {
    if (S_ISDIR(info.st_mode)) throw trace_error("is a directory");
    if (S_ISREG(info.st_mode) && static_cast<std::uintmax_t>(info.st_size) > limits.max_bytes) {
      throw trace_error(fmt::format("the file is {}, over the {} limit", size_text(static_cast<std::size_t>(info.st_size)),
                                    size_text(limits.max_bytes)));
    }
  }
  // Read in pieces, whatever the file claims: a pipe or a growing file has no
  // trustworthy size, and the limit must hold for them too.
  std::string text;
  char buffer[1 << 16];
  for (;;) {
    const std::size_t n = std::fread(buffer, 1, sizeof buffer, file.get());
    if (n > 0) {
      if (text.size() + n > limits.max_bytes) {
        throw trace_error(fmt::format("the file is over the {} limit", size_text(limits.max_bytes)));
      }
      text.append(buffer, n);
    }
    if (n < sizeof buffer) {
      if (std::ferror(file.get())) throw trace_error(fmt::format("cannot read: {}", std::strerror(errno)));
      break;
    }
  }
  return read_trace(text, limits);
}

}  // namespace switchboard::tools::trace_view
