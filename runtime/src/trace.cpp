// The tracer: Chrome trace-event JSON, written as the program runs.
//
// Perfetto and chrome://tracing draw "X" slices on one track only when they
// nest, so a suspension begins where the running stretch that started it
// ended (not at the start() call inside it), and the next stretch begins at
// the resume, after the completion. Every event is one line; the file is
// valid JSON once close() wrote "]}", which the destructor and the limit do.
#include "trace.hpp"

#include <cerrno>
#include <cstring>
#include <system_error>

#include <fmt/compile.h>

#include "switchboard/time.hpp"

namespace switchboard::detail {
namespace {

// The length of a slice; never negative in the file.
microseconds_text span(std::chrono::steady_clock::time_point from, std::chrono::steady_clock::time_point to) {
  return {std::max<std::int64_t>(0, std::chrono::nanoseconds(to - from).count())};
}

void append(fmt::memory_buffer& out, std::string_view text) { out.append(text.data(), text.data() + text.size()); }

// Appends `text` as the inside of a JSON string: a run of plain characters at once.
void append_escaped(fmt::memory_buffer& out, std::string_view text) {
  std::size_t plain = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    append(out, text.substr(plain, i - plain));
    plain = i + 1;
    switch (c) {
      case '"': append(out, "\\\""); break;
      case '\\': append(out, "\\\\"); break;
      case '\n': append(out, "\\n"); break;
      case '\t': append(out, "\\t"); break;
      default: fmt::format_to(fmt::appender(out), "\\u{:04x}", static_cast<unsigned>(c));
    }
  }
  append(out, text.substr(plain));
}


std::string size_text(std::size_t bytes) {
  if (bytes >= (1u << 20) && bytes % (1u << 20) == 0) return fmt::format(FMT_COMPILE("{} MiB"), bytes >> 20);
  if (bytes >= (1u << 10) && bytes % (1u << 10) == 0 && bytes < 16384) {
    return fmt::format(FMT_COMPILE("{} KiB"), bytes >> 10);
  }
  return fmt::format(FMT_COMPILE("{} B"), bytes);
}

std::string duration_text(std::chrono::nanoseconds d) {
  using namespace std::chrono;
  if (d >= seconds(1) && d % milliseconds(1) == nanoseconds::zero()) {
    return fmt::format(FMT_COMPILE("{:g} s"), static_cast<double>(duration_cast<milliseconds>(d).count()) / 1000);
  }
  if (d >= milliseconds(1)) {
    return fmt::format(FMT_COMPILE("{:g} ms"), static_cast<double>(duration_cast<microseconds>(d).count()) / 1000);
  }
  return fmt::format(FMT_COMPILE("{} us"), duration_cast<microseconds>(d).count());
}

std::string label(const operation& op, clock::time_point now) {
  switch (op.code) {
    case op_code::accept: return fmt::format(FMT_COMPILE("accept fd {}"), op.fd);
    case op_code::recv:
      if (op.runtime_buffer) return fmt::format(FMT_COMPILE("receive fd {}"), op.fd);
      return fmt::format(FMT_COMPILE("{} {} fd {}"), op.transfer_all ? "read_exact" : "read_some", size_text(op.size),
                         op.fd);
    case op_code::send:
      return fmt::format(FMT_COMPILE("{} {} fd {}"), op.transfer_all ? "write_all" : "write_some", size_text(op.size),
                         op.fd);
    case op_code::connect: return fmt::format(FMT_COMPILE("connect fd {}"), op.fd);
    case op_code::recvmsg: return fmt::format(FMT_COMPILE("recvmsg fd {}"), op.fd);
    case op_code::sendmsg: return fmt::format(FMT_COMPILE("sendmsg fd {}"), op.fd);
    case op_code::poll:
      return fmt::format(FMT_COMPILE("wait_ready {} fd {}"), (op.poll_events & POLLIN) ? "POLLIN" : "POLLOUT", op.fd);
    case op_code::sendfile: return fmt::format(FMT_COMPILE("send_file {} fd {}"), size_text(op.size), op.fd);
    case op_code::wait:
      if (op.owner) return "wait event";
      if (op.has_timeout) return fmt::format(FMT_COMPILE("sleep {}"), duration_text(op.timeout));
      if (op.has_deadline) return fmt::format(FMT_COMPILE("sleep {}"), duration_text(std::max(op.when - now, clock::duration{})));
      return "sleep";
  }
  return "operation";
}

}  // namespace

void trace_task_posted(loop_state& loop, ready_node& node, std::string_view name) {
  if (loop.trace) loop.trace->task_posted(node, name);
}

namespace {

std::string result_text(const operation& op, int res) {
  if (res < 0) {
    if (res == -ETIMEDOUT) return "timed out";
    if (res == -ECANCELED) return "cancelled";
    const char* name = ::strerrorname_np(-res);
    return name ? name : fmt::format(FMT_COMPILE("errno {}"), -res);
  }
  switch (op.code) {
    case op_code::accept: return fmt::format(FMT_COMPILE("fd {}"), res);
    case op_code::recv:
    case op_code::recvmsg:
      if (op.transfer_all) return op.done == op.size ? size_text(op.done) : fmt::format(FMT_COMPILE("EOF after {} B"), op.done);
      return res == 0 ? "EOF" : fmt::format(FMT_COMPILE("{} B"), res);
    case op_code::send:
    case op_code::sendfile:
      if (op.transfer_all) return size_text(op.done);
      return fmt::format(FMT_COMPILE("{} B"), res);
    case op_code::sendmsg: return fmt::format(FMT_COMPILE("{} B"), res);
    case op_code::poll: return fmt::format(FMT_COMPILE("revents {:#x}"), res);
    case op_code::connect: return "connected";
    case op_code::wait: return op.owner ? "set" : "done";
  }
  return fmt::format(FMT_COMPILE("{}"), res);
}

}  // namespace

tracer::tracer(loop_state& loop, const std::string& path, std::size_t limit, std::string_view backend)
    : loop_(loop), limit_(limit), origin_(std::chrono::steady_clock::now()), backend_(backend) {
  file_ = std::fopen(path.c_str(), "we");
  if (!file_) throw std::system_error(errno, std::generic_category(), "cannot open trace file " + path);
  std::setvbuf(file_, nullptr, _IOFBF, 1 << 16);
  std::fputs("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n", file_);
  line_.clear();
  fmt::format_to(fmt::appender(line_),
                 FMT_COMPILE(R"j({{"ph":"M","name":"process_name","pid":1,"args":{{"name":"switchboard ({})"}}}})j"),
                 backend);
  write_event({line_.data(), line_.size()});
  new_track("loop");
  write_event(R"j({"ph":"M","name":"thread_sort_index","pid":1,"tid":0,"args":{"sort_index":1000000}})j");
}

tracer::~tracer() { close(); }

microseconds_text tracer::micros(time_point t) const { return {std::chrono::nanoseconds(t - origin_).count()}; }

void tracer::write_event(std::string_view json) {
  if (!file_) return;
  if (events_ > 0) std::fputs(",\n", file_);
  std::fwrite(json.data(), 1, json.size(), file_);
  count_event();
}

void tracer::count_event() {
  if (++events_ < limit_) return;
  close(fmt::format("trace limit reached ({} events); tracing stopped", limit_));
}

std::uint32_t tracer::new_track(std::string_view name) {
  const auto tid = static_cast<std::uint32_t>(tracks_.size());
  tracks_.push_back({tid, std::string(name)});
  line_.clear();
  fmt::format_to(fmt::appender(line_), FMT_COMPILE(R"j({{"ph":"M","name":"thread_name","pid":1,"tid":{},"args":{{"name":")j"),
                 tid);
  append_escaped(line_, name);
  append(line_, "\"}}");
  write_event({line_.data(), line_.size()});
  return tid;
}

void tracer::task_posted(ready_node& node, std::string_view name) {
  std::string fallback;
  if (name.empty()) fallback = fmt::format("task {}", ++unnamed_);
  pending& p = waiting_[&node];
  p = pending{};
  p.task = new_track(name.empty() ? std::string_view(fallback) : name);
  p.first_run = true;
}

void tracer::before_run(ready_node& node) {
  ++turn_resumed_;
  run_begin_ = std::chrono::steady_clock::now();
  suspended_on_ = nullptr;
  const auto found = waiting_.find(&node);
  if (found == waiting_.end()) {
    // Not a task's start nor an operation a task waits on: the loop's own work.
    current_.reset();
    return;
  }
  pending p = std::move(found->second);
  waiting_.erase(found);
  current_ = p.task;
  if (!p.first_run) {
    if (!p.stretch_over) {
      // Completed before the stretch that started it ended: nothing was waited.
      p.begin = p.end = run_begin_;
    }
    if (!p.completed) p.end = run_begin_;  // queued at once: the budget was spent
    emit_suspension(p, false);
  }
  if (p.flow) {
    line_.clear();
    fmt::format_to(fmt::appender(line_),
                   FMT_COMPILE(R"j({{"ph":"f","bp":"e","name":"resume","cat":"flow","id":{},"pid":1,"tid":{},"ts":{}}})j"),
                   p.flow, p.task, micros(run_begin_));
    write_event({line_.data(), line_.size()});
  }
}

void tracer::after_run() {
  if (!current_) return;
  const time_point now = std::chrono::steady_clock::now();
  line_.clear();
  fmt::format_to(fmt::appender(line_),
                 FMT_COMPILE(R"j({{"ph":"X","name":"running","cat":"run","pid":1,"tid":{},"ts":{},"dur":{}}})j"),
                 *current_, micros(run_begin_), span(run_begin_, now));
  const std::uint32_t task = *current_;
  current_.reset();
  write_event({line_.data(), line_.size()});
  if (!suspended_on_) return;  // the task ended
  const auto found = waiting_.find(suspended_on_);
  if (found == waiting_.end() || found->second.task != task) return;
  pending& p = found->second;
  p.stretch_over = true;
  p.begin = now;
  if (p.completed) {
    // Completed during the stretch (a cancel, a set event): a zero wait.
    p.end = now;
  }
}

void tracer::op_started(const operation& op, int res, bool queued) {
  const time_point now = std::chrono::steady_clock::now();
  if (res != -EAGAIN && !queued) {
    if (!current_) return;
    line_.clear();
    fmt::format_to(fmt::appender(line_), FMT_COMPILE(R"j({{"ph":"i","s":"t","name":")j"));
    append_escaped(line_, label(op, now));
    fmt::format_to(fmt::appender(line_),
                   FMT_COMPILE(R"j(","cat":"at_once","pid":1,"tid":{},"ts":{},"args":{{"result":")j"), *current_,
                   micros(now));
    append_escaped(line_, result_text(op, res));
    append(line_, R"j(","event":"completed at once"}})j");
    write_event({line_.data(), line_.size()});
    return;
  }
  const ready_node* node = &op;
  pending& p = waiting_[node];
  p = pending{};
  if (current_) {
    p.task = *current_;
    suspended_on_ = node;
  } else {
    // Started outside any task's stretch: one shared track, made when first needed.
    if (!outside_) outside_ = new_track("outside any task");
    p.task = *outside_;
    p.stretch_over = true;
  }
  p.begin = now;
  p.label = label(op, now);
  if (queued) {
    p.result = result_text(op, res);
    p.event = "completed at once (the task yields: its completion budget is spent)";
  }
}

void tracer::op_completed(const operation& op, int res) {
  const auto found = waiting_.find(static_cast<const ready_node*>(&op));
  if (found == waiting_.end()) return;
  pending& p = found->second;
  const time_point now = std::chrono::steady_clock::now();
  p.completed = true;
  p.end = now;
  p.result = result_text(op, res);
  if (!cause_.empty()) {
    p.event = cause_;
  } else if (op.cancel_errno == ETIMEDOUT) {
    p.event = "timer";
  } else if (op.cancel_errno) {
    p.event = "cancel";
  } else if (op.code == op_code::wait) {
    p.event = op.owner ? "event set" : "timer";
  } else {
    p.event = "completed by the loop";
  }
  p.flow = next_flow_++;
  line_.clear();
  fmt::format_to(fmt::appender(line_),
                 FMT_COMPILE(R"j({{"ph":"s","name":"resume","cat":"flow","id":{},"pid":1,"tid":0,"ts":{}}})j"), p.flow,
                 micros(now));
  write_event({line_.data(), line_.size()});
}

void tracer::emit_suspension(const pending& p, bool unfinished) {
  line_.clear();
  fmt::format_to(fmt::appender(line_), FMT_COMPILE(R"j({{"ph":"X","name":")j"));
  append_escaped(line_, p.label);
  fmt::format_to(fmt::appender(line_), FMT_COMPILE(R"j(","cat":"wait","pid":1,"tid":{},"ts":{},"dur":{},"args":{{)j"),
                 p.task, micros(p.begin), span(p.begin, p.end));
  if (unfinished) {
    append(line_, R"j("unfinished":true)j");
  } else {
    append(line_, R"j("result":")j");
    append_escaped(line_, p.result);
    append(line_, R"j(","event":")j");
    append_escaped(line_, p.event);
    line_.push_back('"');
  }
  append(line_, "}}");
  write_event({line_.data(), line_.size()});
}

void tracer::turn_begin() {
  turn_begin_ = std::chrono::steady_clock::now();
  turn_timers_ = turn_resumed_ = 0;
  wait_events_ = 0;
  in_wait_ = false;
  cause_.clear();
}

void tracer::wait_begin(std::optional<std::chrono::nanoseconds> timeout) {
  wait_begin_ = std::chrono::steady_clock::now();
  wait_timeout_ = timeout;
  wait_events_ = 0;
  in_wait_ = true;
  cause_.clear();
}

void tracer::wait_end() {
  const time_point now = std::chrono::steady_clock::now();
  in_wait_ = false;
  cause_.clear();
  line_.clear();
  fmt::format_to(fmt::appender(line_),
                 FMT_COMPILE(R"j({{"ph":"X","name":"{} wait","cat":"loop","pid":1,"tid":0,"ts":{},"dur":{},"args":{{"timeout":"{}","events":{}}}}})j"),
                 backend_, micros(wait_begin_), span(wait_begin_, now),
                 wait_timeout_ ? duration_text(*wait_timeout_) : std::string("none"), wait_events_);
  write_event({line_.data(), line_.size()});
}

void tracer::turn_end() {
  const time_point now = std::chrono::steady_clock::now();
  cause_.clear();
  line_.clear();
  fmt::format_to(fmt::appender(line_),
                 FMT_COMPILE(R"j({{"ph":"X","name":"turn","cat":"loop","pid":1,"tid":0,"ts":{},"dur":{},"args":{{"timers fired":{},"coroutines resumed":{}}}}})j"),
                 micros(turn_begin_), span(turn_begin_, now), turn_timers_, turn_resumed_);
  write_event({line_.data(), line_.size()});
}

void tracer::close(std::string_view why) {
  if (!file_) return;
  if (loop_.trace == this) loop_.trace = nullptr;
  std::FILE* file = file_;
  const time_point now = std::chrono::steady_clock::now();
  // Past the limit only these closing events are written.
  limit_ = static_cast<std::size_t>(-1);
  for (auto& [node, p] : waiting_) {
    if (p.first_run) continue;
    pending open = p;
    if (!open.stretch_over) open.begin = now;
    open.end = now;
    emit_suspension(open, true);
  }
  waiting_.clear();
  if (!why.empty()) {
    line_.clear();
    append(line_, R"j({"ph":"i","s":"g","name":")j");
    append_escaped(line_, why);
    fmt::format_to(fmt::appender(line_), FMT_COMPILE(R"j(","cat":"trace","pid":1,"tid":0,"ts":{}}})j"), micros(now));
    write_event({line_.data(), line_.size()});
  }
  file_ = nullptr;
  std::fputs("\n]}\n", file);
  std::fclose(file);
}

}  // namespace switchboard::detail
