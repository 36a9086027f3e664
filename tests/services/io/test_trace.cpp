// --trace FILE and --trace-limit N on a server, as a user runs it: the echo
// server on the backend under test, over loopback sockets, stopped by
// SIGTERM, leaves a Chrome trace-event file that Python's json module parses
// and that names the accept loop and each session's track.
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "../../support/async.hpp"

using namespace switchboard::testing;

namespace {

// argv: the file, the port, the mode: "full" (every check), "limited" or
// "second" (cut short by a second stop signal).
const char* const checker = R"py(
import json, sys
path, port, mode = sys.argv[1], sys.argv[2], sys.argv[3]
events = json.load(open(path))["traceEvents"]
names = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
assert names.get(0) == "loop", names
for w in (e for e in events if e["ph"] == "X" and e.get("cat") == "wait"):
    assert "result" in w["args"] or w["args"].get("unfinished"), w
if mode == "second":
    assert events[-1]["name"] == "second signal (Terminated): exiting now", events[-1]
    stuck = [e for e in events if e.get("cat") == "wait" and e["args"].get("unfinished")]
    assert any(e["name"].startswith("receive") for e in stuck), stuck
    sys.exit(0)
if mode == "limited":
    assert "trace limit reached" in events[-1]["name"], events[-1]
    sys.exit(0)
assert not any("trace limit reached" in e.get("name", "") for e in events)
tid = {v: k for k, v in names.items()}
accept = tid["echo accept loop on 127.0.0.1:" + port]
sessions = sorted((int(v.split("#")[1].split()[0]), k) for k, v in names.items()
                  if v.startswith("echo connection #") and " from 127.0.0.1:" in v)
sessions = [k for _, k in sessions]
assert len(sessions) == 2, names
waits = [e for e in events if e["ph"] in ("X", "i") and e.get("cat") in ("wait", "at_once")]
accepts = [w for w in waits if w["tid"] == accept and w["name"].startswith("accept fd ")]
assert any(w["args"].get("result", "").startswith("fd ") for w in accepts), accepts
# The silent client's session waited for its first byte and read EOF when it left.
silent = [w for w in waits if w["tid"] == sessions[0] and w["name"].startswith(("receive", "read_some"))]
assert any(w["args"].get("result") == "EOF" for w in silent), silent
# The other echoed its message.
served = [w for w in waits if w["tid"] == sessions[1]]
assert any(w["name"].startswith(("receive", "read_some")) and w["args"].get("result") == "5 B" for w in served), served
assert any(w["name"].startswith("write_all 5 B") for w in served), served
)py";

void check_trace(const std::string& path, std::uint16_t port, const char* mode) {
  auto checked = run_command({"python3", "-c", checker, path, std::to_string(port), mode}, 30s);
  INFO(checked.err);
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  INFO(text.str().substr(0, 6000));
  CHECK(checked.status == 0);
}

std::vector<std::string> echo_args(std::vector<std::string> extra) {
  std::vector<std::string> argv{program(), "echo", "--port", "0", "--backend", backend_name()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

command_result echo_client(std::uint16_t port, std::vector<std::string> extra) {
  std::vector<std::string> argv{program(), "echo-client", "--port", std::to_string(port),
                                "--backend", backend_name()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return run_command(argv, 30s);
}

// Whether process `pid` blocks `sig` (a signalfd waits for it) within 10 s.
bool blocks_signal(pid_t pid, int sig) {
  for (int tries = 0; tries < 1000; ++tries) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("SigBlk:", 0) == 0 && (std::stoull(line.substr(7), nullptr, 16) >> (sig - 1) & 1)) return true;
    }
    ::usleep(10'000);
  }
  return false;
}

}  // namespace

TEST_CASE("echo --trace: after SIGTERM the file parses and names the accept loop and each session",
          "[io][trace]") {
  temp_dir dir;
  const std::string path = dir.file("echo.json");
  child_process server(echo_args({"--trace", path}));
  const std::uint16_t port = server.wait_listening();
  REQUIRE(port != 0);

  const int silent = raw_connect(port);  // out to lunch: its session waits for a first byte
  auto result = echo_client(port, {"--message", "hello"});
  CHECK(result.status == 0);
  CHECK(result.out == "hello");
  ::close(silent);

  server.signal(SIGTERM);
  REQUIRE(server.wait_exit() == 0);
  check_trace(path, port, "full");
}

TEST_CASE("echo --trace-limit: a small limit still leaves a valid file that says where it stopped",
          "[io][trace]") {
  temp_dir dir;
  const std::string path = dir.file("limited.json");
  child_process server(echo_args({"--trace", path, "--trace-limit", "40"}));
  const std::uint16_t port = server.wait_listening();
  REQUIRE(port != 0);
  auto result = echo_client(port, {"--size", "1000", "--count", "20"});
  CHECK(result.status == 0);
  server.signal(SIGTERM);
  REQUIRE(server.wait_exit() == 0);
  check_trace(path, port, "limited");
  // The file stopped growing at the limit: 40 events of a few hundred bytes.
  std::ifstream file(path, std::ios::ate);
  CHECK(static_cast<long>(file.tellg()) < 40 * 1024);
}

TEST_CASE("echo --trace: a second SIGTERM cuts the drain short and still leaves a valid file",
          "[io][trace][signal]") {
  temp_dir dir;
  const std::string path = dir.file("second.json");
  child_process server(echo_args({"--trace", path, "--drain-timeout", "30"}));
  const std::uint16_t port = server.wait_listening();
  REQUIRE(port != 0);
  const int silent = raw_connect(port);  // its session holds the drain up
  REQUIRE(echo_client(port, {"--message", "hello"}).status == 0);  // served after it: it was accepted
  server.signal(SIGTERM);
  REQUIRE(server.wait_for_line("no longer accepting"));
  CHECK(server.wait_exit(500ms) == std::nullopt);
  server.signal(SIGTERM);
  CHECK(server.wait_exit(5s) == 128 + SIGTERM);
  ::close(silent);
  check_trace(path, port, "second");
}

TEST_CASE("--trace to a file that cannot be created: exit 1, naming it", "[io][trace]") {
  temp_dir dir;
  const std::string path = dir.file("missing/dir/trace.json");
  auto result = run_command(echo_args({"--trace", path}), 10s);
  CHECK(result.status == 1);
  CHECK(result.err.find("cannot open trace file " + path) != std::string::npos);
}

TEST_CASE("echo-client --trace: the client's own run parses, its connect and read on its tracks",
          "[io][trace]") {
  temp_dir dir;
  const std::string path = dir.file("client.json");
  child_process server(echo_args({}));
  const std::uint16_t port = server.wait_listening();
  REQUIRE(port != 0);
  auto result = echo_client(port, {"--message", "hello", "--trace", path});
  CHECK(result.status == 0);
  CHECK(result.out == "hello");
  server.signal(SIGTERM);
  CHECK(server.wait_exit() == 0);
  const char* const client_checker = R"py(
import json, sys
events = json.load(open(sys.argv[1]))["traceEvents"]
names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
assert {"loop", "main", "echo-client sender"} <= names, names
waits = [e for e in events if e.get("cat") in ("wait", "at_once")]
assert any(w["name"].startswith("connect fd ") for w in waits), waits
assert any(w["name"].startswith("read_exact 5 B") and w["args"].get("result") == "5 B" for w in waits), waits
)py";
  auto checked = run_command({"python3", "-c", client_checker, path}, 30s);
  INFO(checked.err);
  CHECK(checked.status == 0);
}

TEST_CASE("--trace-limit without --trace is a usage error", "[io][trace]") {
  CHECK(run_command(echo_args({"--trace-limit", "10"}), 10s).status == 2);
  CHECK(run_command({program(), "echo-client", "--port", "1", "--trace-limit", "10"}, 10s).status == 2);
}

TEST_CASE("udp-echo --trace: each datagram's recvmsg ends with the backend's own event", "[io][trace]") {
  temp_dir dir;
  const std::string path = dir.file("udp.json");
  child_process server({program(), "udp-echo", "--port", "0", "--backend", backend_name(), "--trace", path});
  const std::uint16_t port = server.wait_listening();
  REQUIRE(port != 0);
  auto result = run_command({program(), "udp-echo-client", "--port", std::to_string(port), "--backend",
                             backend_name(), "--message", "hello"},
                            30s);
  CHECK(result.status == 0);
  server.signal(SIGTERM);
  REQUIRE(server.wait_exit() == 0);
  const char* const datagram_checker = R"py(
import json, sys
path, port, backend = sys.argv[1], sys.argv[2], sys.argv[3]
events = json.load(open(path))["traceEvents"]
names = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
tid = {v: k for k, v in names.items()}
server = tid["udp-echo on 127.0.0.1:" + port]
words = {"select": "select() \u2192 fd ", "epoll": "epoll_wait \u2192 EPOLLIN", "uring": "CQE res=5 for recvmsg fd "}[backend]
received = [e for e in events if e.get("tid") == server and e.get("cat") == "wait" and e["name"].startswith("recvmsg fd ")]
assert any(e["args"].get("result") == "5 B" and e["args"]["event"].startswith(words) for e in received), received
# The server was still waiting for the next datagram when it was stopped.
assert received[-1]["args"].get("result") == "cancelled" or received[-1]["args"].get("unfinished"), received[-1]
)py";
  auto checked = run_command({"python3", "-c", datagram_checker, path, std::to_string(port), backend_name()}, 30s);
  INFO(checked.err);
  CHECK(checked.status == 0);
}

TEST_CASE("echo-client --trace stopped by SIGINT still leaves a valid file", "[io][trace][signal]") {
  temp_dir dir;
  const std::string path = dir.file("interrupted.json");
  child_process server(echo_args({}));
  const std::uint16_t port = server.wait_listening();
  REQUIRE(port != 0);
  int input[2];
  REQUIRE(::pipe(input) == 0);  // held open: the client waits for standard input
  child_process client({program(), "echo-client", "--port", std::to_string(port), "--backend", backend_name(),
                        "--trace", path},
                       input[0]);
  ::close(input[0]);
  REQUIRE(blocks_signal(client.pid(), SIGINT));  // the client took SIGINT over: it is running
  client.signal(SIGINT);
  CHECK(client.wait_exit(5s) == 128 + SIGINT);
  ::close(input[1]);
  server.signal(SIGTERM);
  CHECK(server.wait_exit() == 0);
  const char* const interrupted_checker = R"py(
import json, sys
events = json.load(open(sys.argv[1]))["traceEvents"]
assert events[-1]["name"] == "Interrupt: client stopped", events[-1]
)py";
  auto checked = run_command({"python3", "-c", interrupted_checker, path}, 30s);
  INFO(checked.err);
  CHECK(checked.status == 0);
}
