// runtime_options::trace on every backend: the seed-001 lunch scenario (A
// connects and says nothing; B is served meanwhile; then A speaks) leaves a
// Chrome trace-event file that parses, names each task's track, and shows
// B's read ending on its backend's event while A's read still waits.
#include <catch2/catch.hpp>

#include <array>
#include <fstream>
#include <sstream>
#include <string>

#include <switchboard/net.hpp>
#include <switchboard/runtime.hpp>
#include <switchboard/time.hpp>

#include "../support/async.hpp"
#include "../support/stream_pair.hpp"

using namespace switchboard;
using namespace std::chrono_literals;
using testing::make_pair;
using testing::run_async;

namespace {

// A session: reads one message and answers it.
task<void> answer_once(stream& s) {
  std::array<char, 64> buf{};
  auto got = co_await s.read_some(buf);
  REQUIRE(got);
  auto sent = co_await s.write_all("lunch is served");
  REQUIRE(sent);
}

task<void> nap() { co_await sleep_for(1ms); }

task<void> lunch() {
  auto a = co_await make_pair();
  auto b = co_await make_pair();
  task_group sessions(co_await this_scope());
  sessions.spawn(answer_once(a.server), "session A");
  sessions.spawn(answer_once(b.server), "session B");
  // A name the file must escape: quotes, a backslash, a newline, a control character.
  sessions.spawn(nap(), "odd \"name\" C:\\ \n\x01 end");
  co_await sleep_for(5ms);  // both sessions now wait in read_some

  std::array<char, 64> reply{};
  auto said = co_await b.client.write_all("hi");
  REQUIRE(said);
  auto served = co_await b.client.read_some(reply);  // B is served; A still says nothing
  REQUIRE(served);

  said = co_await a.client.write_all("sorry, I was thinking");
  REQUIRE(said);
  served = co_await a.client.read_some(reply);
  INFO((served ? std::string("ok") : served.error().message()));
  REQUIRE(served);
  co_await sessions.join();
}

// Python's json module is the strict parser; the checks follow it.
const char* const checker = R"py(
import json, sys
path, backend, limited = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
trace = json.load(open(path))
events = trace["traceEvents"]
names = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
assert names.get(0) == "loop", names
waits = [e for e in events if e["ph"] == "X" and e.get("cat") == "wait"]
for w in waits:
    assert "result" in w["args"] or w["args"].get("unfinished"), w
if limited:
    assert "trace limit reached" in events[-1]["name"], events[-1]
    assert len(events) < 80, len(events)
    sys.exit(0)
assert "main" in names.values(), names
tid = {v: k for k, v in names.items()}
assert tid["session A"] != tid["session B"]
assert "odd \"name\" C:\\ \n\x01 end" in tid, names
def read_of(who):
    reads = [w for w in waits if w["tid"] == tid[who] and w["name"].startswith("read_some 64 B")]
    assert len(reads) == 1, (who, reads)
    return reads[0]
a, b = read_of("session A"), read_of("session B")
words = {"select": "select() \u2192 fd ", "epoll": "epoll_wait \u2192 EPOLLIN", "uring": "CQE res=2 for recv"}
assert b["args"]["result"] == "2 B", b
assert b["args"]["event"].startswith(words[backend]), b
assert a["args"]["result"] == "21 B", a
b_end = b["ts"] + b["dur"]
assert a["ts"] <= b_end <= a["ts"] + a["dur"], (a, b)
assert any(e["ph"] == "X" and e["name"] == "turn" and e["tid"] == 0 for e in events)
flows = [e for e in events if e["ph"] in ("s", "f")]
assert {e["id"] for e in flows if e["ph"] == "f"} <= {e["id"] for e in flows if e["ph"] == "s"}
)py";

void check_trace(const std::string& path, bool limited) {
  auto checked = testing::run_command(
      {"python3", "-c", checker, path, testing::backend_name(), limited ? "1" : "0"}, 30s);
  INFO(checked.err);
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  INFO(text.str().substr(0, 4000));
  CHECK(checked.status == 0);
}

}  // namespace

TEST_CASE("trace: the lunch scenario shows B served while A's read still waits", "[io][trace]") {
  testing::temp_dir dir;
  const std::string path = dir.path() + "/lunch.json";
  run_async(lunch(), 20s, {.trace = path});
  check_trace(path, false);
}

TEST_CASE("trace: the limit stops tracing and leaves a valid file", "[io][trace]") {
  testing::temp_dir dir;
  const std::string path = dir.path() + "/limited.json";
  run_async(lunch(), 20s, {.trace = path, .trace_limit = 40});
  check_trace(path, true);
}
