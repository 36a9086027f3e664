#include "tour.hpp"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/core.h>
#include <switchboard/runtime.hpp>

#include "../process.hpp"

namespace switchboard::tools::tour {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

struct outcome {
  bool ok = false;
  std::string note;  // why it failed, or what was measured
};

// A running server of ours on a free port, stopped by PID (SIGTERM) at the end.
struct server_process {
  child_process process;
  std::uint16_t port;

  server_process(const std::string& service, const std::string& backend,
                 std::vector<std::string> extra = {})
      : process(argv_for(service, backend, std::move(extra))), port(process.wait_listening()) {}

  static std::vector<std::string> argv_for(const std::string& service, const std::string& backend,
                                           std::vector<std::string> extra) {
    std::vector<std::string> argv{this_program(), service, "--port", "0", "--backend", backend};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  command_result client(const std::string& name, std::vector<std::string> args) const {
    std::vector<std::string> argv{this_program(), name, "--port", std::to_string(port), "--timeout", "10"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, 20s);
  }

  // Stops the server as a user would and checks that it exits cleanly.
  outcome stop() {
    process.signal(SIGTERM);
    const auto status = process.wait_exit(15s);
    if (status == 0) return {true, {}};
    return {false, fmt::format("exit status {} after SIGTERM", status ? *status : -1)};
  }
};

outcome from_client(const command_result& result) {
  if (result.status == 0) return {true, {}};
  const auto line_end = result.err.find('\n');
  return {false, result.err.substr(0, line_end)};
}

// A blocking socket that connects and then says nothing: client A of seed 001.
int silent_client(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  const timeval limit{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  return fd;
}

// Client A, back from lunch: says `line` at last and must get it back whole.
outcome speak_at_last(int fd, const std::string& line) {
  if (::send(fd, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
    return {false, "the silent client could not speak"};
  }
  std::string echoed;
  char buffer[256];
  while (echoed.size() < line.size()) {
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) return {false, "the silent client got no echo when it spoke"};
    echoed.append(buffer, static_cast<std::size_t>(n));
  }
  if (echoed != line) return {false, fmt::format("the silent client got '{}' back", echoed)};
  return {true, {}};
}

outcome echo_steps(const std::string& backend) {
  server_process server("echo", backend);
  if (server.port == 0) return {false, "server did not start: " + server.process.err()};
  for (auto args : std::vector<std::vector<std::string>>{
           {"--message", "hello"}, {"--size", "65536", "--count", "20", "--connections", "20"}}) {
    if (outcome o = from_client(server.client("echo-client", args)); !o.ok) return o;
  }
  return server.stop();
}

// Draws a trace as a picture with this program's trace-view.
outcome draw_trace(const std::string& trace, const std::string& picture) {
  return from_client(run_command({this_program(), "trace-view", trace, "-o", picture}, 30s));
}

// Seed 001's lunch: A connects and says nothing; B connects and is served at
// once; then A speaks and is served too. With `trace_dir`, the server writes
// its trace there and the tour draws it (trace-view) beside it.
outcome lunch_steps(const std::string& backend, const std::optional<std::string>& trace_dir) {
  std::vector<std::string> extra;
  std::string trace;
  if (trace_dir) {
    trace = fmt::format("{}/lunch-{}.json", *trace_dir, backend);
    extra = {"--trace", trace};
  }
  server_process server("echo", backend, extra);
  if (server.port == 0) return {false, "server did not start: " + server.process.err()};
  const int out_to_lunch = silent_client(server.port);
  const auto start = steady::now();
  outcome served = from_client(server.client("echo-client", {"--message", "not kept waiting"}));
  if (served.ok && steady::now() - start > 2s) served = {false, "the second client waited"};
  if (served.ok) served = speak_at_last(out_to_lunch, "back from lunch\n");
  ::close(out_to_lunch);
  if (!served.ok) return served;
  if (outcome stopped = server.stop(); !stopped.ok || !trace_dir) return stopped;
  return draw_trace(trace, fmt::format("{}/lunch-{}.svg", *trace_dir, backend));
}

// A file for the files steps to serve: 1 MiB and a bit, different at every offset.
std::string write_tour_file(const temp_dir& dir) {
  std::string bytes(1024 * 1024 + 123, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7 + i / 251);
  std::ofstream(dir.file("tour.bin"), std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return bytes;
}

bool same_content(const std::string& path, const std::string& expected) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {}) == expected;
}

// The seed's protocol, then the named extension (verified by SHA-256).
outcome files_steps(const std::string& backend) {
  temp_dir dir;
  const std::string content = write_tour_file(dir);
  server_process server("files", backend, {"--file", dir.file("tour.bin"), "--root", dir.path()});
  if (server.port == 0) return {false, "server did not start"};
  if (outcome o = from_client(server.client("files-client", {"--output", dir.file("seed.out")})); !o.ok) {
    return o;
  }
  if (!same_content(dir.file("seed.out"), content)) return {false, "the seed download differs"};
  if (outcome o = from_client(server.client(
          "files-client", {"--output", dir.file("named.out"), "--name", "tour.bin"}));
      !o.ok) {
    return o;
  }
  return server.stop();
}

outcome files_udp_steps(const std::string& backend) {
  temp_dir dir;
  write_tour_file(dir);
  server_process server("files", backend, {"--udp", "--file", dir.file("tour.bin")});
  if (server.port == 0) return {false, "server did not start"};
  if (outcome o = from_client(server.client("files-client", {"--udp", "--output", dir.file("udp.out")}));
      !o.ok) {
    return o;
  }
  return server.stop();
}

// A whole game played by guess-client's binary search, over TCP or UDP.
outcome guess_steps(const std::string& backend, const std::vector<std::string>& transport) {
  server_process server("guess", backend, transport);
  if (server.port == 0) return {false, "server did not start: " + server.process.err()};
  std::vector<std::string> args = transport;
  args.push_back("--auto");
  if (outcome o = from_client(server.client("guess-client", args)); !o.ok) return o;
  return server.stop();
}

// `service` started with `server_args`, then `client` run once per entry of
// `runs`; every run must succeed and print what `expected` names.
outcome client_steps(const std::string& backend, const std::string& service,
                     const std::vector<std::string>& server_args, const std::string& client,
                     const std::vector<std::vector<std::string>>& runs, const std::string& expected) {
  server_process server(service, backend, server_args);
  if (server.port == 0) return {false, "server did not start: " + server.process.err()};
  for (const auto& args : runs) {
    const command_result result = server.client(client, args);
    if (outcome o = from_client(result); !o.ok) return o;
    if (result.out.find(expected) == std::string::npos) {
      return {false, fmt::format("{} printed '{}'", client, result.out)};
    }
  }
  return server.stop();
}

struct step {
  std::string name;
  std::function<outcome(const std::string&)> run;
};

}  // namespace

int run(const std::optional<std::string>& trace_dir) {
  const std::vector<std::string> backends{"select", "epoll", "uring"};
  const std::vector<step> steps{
      {"echo", echo_steps},
      {"echo: silent client first (seed 001)",
       [&](const std::string& backend) { return lunch_steps(backend, trace_dir); }},
      {"files: seed protocol, then by name", files_steps},
      {"files over UDP (verified)", files_udp_steps},
      {"guess", [](const std::string& backend) { return guess_steps(backend, {}); }},
      {"guess over UDP", [](const std::string& backend) { return guess_steps(backend, {"--udp"}); }},
      {"ack", [](const std::string& backend) {
         return client_steps(backend, "ack", {}, "ack-client", {{"--message", "hello from the tour"}},
                             "I got your message\n");
       }},
      {"udp-echo", [](const std::string& backend) {
         return client_steps(backend, "udp-echo", {}, "udp-echo-client", {{}, {"--size", "65507"}}, "\n");
       }},
      {"daytime", [](const std::string& backend) {
         return client_steps(backend, "daytime", {}, "daytime-client", {{}}, "-UTC\n");
       }},
      {"daytime over UDP", [](const std::string& backend) {
         return client_steps(backend, "daytime", {"--udp"}, "daytime-client", {{"--udp"}}, "-UTC\n");
       }},
  };
  std::map<std::string, std::string> unavailable;
  for (const std::string& backend : backends) {
    if (auto refused = probe_backend(*parse_backend(backend))) unavailable[backend] = refused->what();
  }

  fmt::print("switchboard tour: every service on every backend, driven by its client\n\n");
  fmt::print("{:<40}", "");
  for (const auto& b : backends) fmt::print("{:<16}", b);
  fmt::print("\n");
  int failures = 0;
  std::vector<std::string> notes;
  for (const step& s : steps) {
    fmt::print("{:<40}", s.name);
    for (const std::string& backend : backends) {
      if (unavailable.count(backend)) {
        fmt::print("{:<16}", "n/a");
        continue;
      }
      const auto start = steady::now();
      const outcome o = s.run(backend);
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start);
      fmt::print("{:<16}", fmt::format("{} {:>5} ms", o.ok ? "ok    " : "FAILED", ms.count()));
      std::fflush(stdout);
      if (!o.ok) {
        ++failures;
        notes.push_back(fmt::format("{} on {}: {}", s.name, backend, o.note));
      }
    }
    fmt::print("\n");
  }
  for (const auto& [backend, why] : unavailable) {
    fmt::print("\n{} is not available here: {}\n", backend, why);
  }
  for (const std::string& note : notes) fmt::print("\nFAILED: {}\n", note);
  if (trace_dir) {
    fmt::print("\nThe lunch step's traces and pictures, one per backend: {}/lunch-BACKEND.json and .svg\n",
               *trace_dir);
  }
  fmt::print("\n{}\n", failures == 0 ? "everything worked." : fmt::format("{} failures.", failures));
  return failures == 0 ? 0 : exit_failure;
}

void add_command(CLI::App& app, services::command_list& commands) {
  CLI::App* cmd = app.add_subcommand("tour", "start every service on every backend and drive it");
  auto trace_dir = std::make_shared<std::string>();
  cmd->add_option("--trace", *trace_dir,
                  "trace the lunch step (seed 001) on each backend: DIR/lunch-BACKEND.json, drawn as "
                  "DIR/lunch-BACKEND.svg")
      ->option_text("DIR")
      ->check(CLI::ExistingDirectory);
  commands.push_back({cmd, [cmd, trace_dir] {
                        return run(cmd->count("--trace") ? std::optional(*trace_dir) : std::nullopt);
                      }});
}

}  // namespace switchboard::tools::tour
