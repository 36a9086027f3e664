// Command-line conventions and backend selection, independent of the backend
// under test: what a script can rely on.
#include <catch2/catch.hpp>

#include <string>

#include "../../support/async.hpp"


using namespace switchboard::testing;

namespace {
command_result switchboard_run(std::vector<std::string> args, std::chrono::milliseconds limit = 20s) {
  args.insert(args.begin(), program());
  return run_command(args, limit);
}

// Runs the server under a seccomp filter that fails io_uring_setup with `err`.
command_result without_io_uring(const std::string& err, std::vector<std::string> args) {
  args.insert(args.begin(), {helper("DENY_URING_BIN"), err, program()});
  return run_command(args, 20s);
}
}  // namespace

TEST_CASE("--help and --version print to stdout and exit 0", "[cli]") {
  auto help = switchboard_run({"--help"});
  CHECK(help.status == 0);
  CHECK(help.out.find("echo") != std::string::npos);
  auto version = switchboard_run({"--version"});
  CHECK(version.status == 0);
  CHECK_FALSE(version.out.empty());
  auto sub_help = switchboard_run({"echo", "--help"});
  CHECK(sub_help.status == 0);
  CHECK(sub_help.out.find("--backend") != std::string::npos);
}

TEST_CASE("usage errors print to stderr and exit 2", "[cli]") {
  for (auto args : std::vector<std::vector<std::string>>{{"echo", "--port", "70000"},
                                                         {"echo", "--port", "abc"},
                                                         {"echo", "--backend", "kqueue"},
                                                         {"echo", "--no-such-flag"},
                                                         {"no-such-command"},
                                                         {}}) {
    auto result = switchboard_run(args);
    CHECK(result.status == 2);
    CHECK_FALSE(result.err.empty());
  }
}

TEST_CASE("a bad port is a usage error that names the option, the range and the text", "[cli]") {
  for (const char* port : {"70000", "-1", " 80", "80x", "0x50", ""}) {
    INFO("--port '" << port << "'");
    auto result = switchboard_run({"echo", "--port", port});
    CHECK(result.status == 2);
    CHECK(result.err.find("--port: expected a port number from 0 to 65535, got '" + std::string(port) + "'") !=
          std::string::npos);
  }
  auto relay = switchboard_run({"udp-relay", "--listen-port", "70000", "--target", "127.0.0.1:7"});
  CHECK(relay.status == 2);
  CHECK(relay.err.find("--listen-port: expected a port number from 0 to 65535, got '70000'") !=
        std::string::npos);
  for (const char* target : {"127.0.0.1:80x", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:"}) {
    INFO("--target " << target);
    auto bad = switchboard_run({"udp-relay", "--listen-port", "0", "--target", target});
    CHECK(bad.status == 2);
    CHECK(bad.err.find("expected HOST:PORT with a port from 1 to 65535") != std::string::npos);
  }
}

TEST_CASE("a port already in use is a clear error", "[cli]") {
  child_process first({program(), "echo", "--port", "0"});
  const std::uint16_t port = first.wait_listening();
  REQUIRE(port != 0);
  auto second = switchboard_run({"echo", "--port", std::to_string(port)});
  CHECK(second.status == 1);
  CHECK(second.err.find("Address already in use") != std::string::npos);
}

TEST_CASE("backends lists every backend with its availability", "[cli]") {
  auto result = switchboard_run({"backends"});
  CHECK(result.status == 0);
  for (const char* name : {"select", "epoll", "uring"}) {
    CHECK(result.out.find(name) != std::string::npos);
  }
}

TEST_CASE("--backend uring exits 69 with the errno and its cause when io_uring is blocked", "[cli][fallback]") {
  auto blocked = without_io_uring("EPERM", {"echo", "--port", "0", "--backend", "uring"});
  CHECK(blocked.status == 69);
  CHECK(blocked.err.find("EPERM") != std::string::npos);
  CHECK(blocked.err.find("seccomp") != std::string::npos);
  CHECK(blocked.err.find("--backend epoll") != std::string::npos);

  auto absent = without_io_uring("ENOSYS", {"echo", "--port", "0", "--backend", "io_uring"});
  CHECK(absent.status == 69);
  CHECK(absent.err.find("ENOSYS") != std::string::npos);

  auto memlock = without_io_uring("ENOMEM", {"echo", "--port", "0", "--backend", "uring"});
  CHECK(memlock.status == 69);
  CHECK(memlock.err.find("ulimit -l") != std::string::npos);
}

TEST_CASE("--backend auto falls back to epoll and says why when io_uring is blocked", "[cli][fallback]") {
  child_process server({helper("DENY_URING_BIN"), "EPERM", program(), "echo", "--port", "0",
                        "--backend", "auto"});
  const std::uint16_t port = server.wait_listening();
  REQUIRE(port != 0);
  auto why = server.wait_for_line("backend auto");
  REQUIRE(why);
  CHECK(why->find("EPERM") != std::string::npos);
  CHECK(server.wait_for_line("backend epoll)"));
  auto echoed = switchboard_run({"echo-client", "--port", std::to_string(port), "--message", "hi"});
  CHECK(echoed.status == 0);
  CHECK(echoed.out == "hi");
}

TEST_CASE("tour --trace DIR leaves the lunch step's trace and picture per backend, A and B interleaved",
          "[cli][trace]") {
  temp_dir dir;
  auto tour = switchboard_run({"tour", "--trace", dir.path()}, 120s);
  INFO(tour.out << tour.err);
  REQUIRE(tour.status == 0);
  // Per backend the tour ran (a backend this machine lacks shows n/a): B was
  // served while A's first read still waited; then A was served; the picture
  // is XML that names both sessions.
  const char* const checker = R"py(
import json, os, sys
import xml.etree.ElementTree as ET
folder, table = sys.argv[1], sys.argv[2]
header = next(line for line in table.splitlines() if line.split() == ["select", "epoll", "uring"])
lunch = next(line for line in table.splitlines() if line.startswith("echo: silent client first"))
drawn = 0
for backend in ("select", "epoll", "uring"):
    column = lunch[header.index(backend):].split()
    if column[0] == "n/a":
        continue
    events = json.load(open(os.path.join(folder, "lunch-%s.json" % backend)))["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    tid = {v.split(" from ")[0]: k for k, v in names.items()}
    def first_read(track):
        return next(e for e in events if e.get("tid") == tid[track] and e.get("cat") in ("wait", "at_once")
                    and e["name"].startswith(("receive", "read_some")))
    a, b = first_read("echo connection #1"), first_read("echo connection #2")
    assert b["args"]["result"] == "16 B" and a["args"]["result"] == "16 B", (a, b)
    # A waited; B's read (a wait, or at once when B's bytes came with it) fell inside A's wait.
    assert a["cat"] == "wait" and a["ts"] < b["ts"] + b.get("dur", 0) < a["ts"] + a["dur"], (backend, a, b)
    svg = ET.parse(os.path.join(folder, "lunch-%s.svg" % backend))
    text = " ".join(svg.getroot().itertext())
    assert all(n in text for n in names.values()), (backend, names)
    drawn += 1
assert drawn >= 2, table
)py";
  auto checked = run_command({"python3", "-c", checker, dir.path(), tour.out}, 30s);
  INFO(checked.err);
  CHECK(checked.status == 0);
}
