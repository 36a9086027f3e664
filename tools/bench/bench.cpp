#include "bench.hpp"

#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "../process.hpp"
#include "bench_core.hpp"
#include "plot.hpp"

namespace switchboard::tools::bench {
namespace {

using namespace std::chrono_literals;
constexpr double missing = std::numeric_limits<double>::quiet_NaN();
// A limit, not a length: a counted run under valgrind ends when every round
// trip is back, after a few seconds.
constexpr double counted_run_limit_s = 120;

std::atomic<bool> interrupted{false};

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  return cpus;
}

// Starts argv on `cpus`: the child inherits the affinity this process has
// while it forks, so it is pinned before it execs; ours is restored after.
std::unique_ptr<child_process> spawn_on(std::vector<std::string> argv, const std::vector<int>& cpus) {
  cpu_set_t saved;
  const bool pin = !cpus.empty() && ::sched_getaffinity(0, sizeof saved, &saved) == 0;
  if (pin) {
    cpu_set_t want;
    CPU_ZERO(&want);
    for (int cpu : cpus) CPU_SET(cpu, &want);
    ::sched_setaffinity(0, sizeof want, &want);
  }
  auto child = std::make_unique<child_process>(std::move(argv));
  if (pin) ::sched_setaffinity(0, sizeof saved, &saved);
  return child;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The CPU of `pid` and of every live descendant (a supervisor's workers),
// each with the children it has reaped.
std::optional<double> cpu_seconds(pid_t pid) {
  std::map<long, std::vector<long>> children;
  std::map<long, std::uint64_t> ticks;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", std::filesystem::directory_options::skip_permission_denied)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string stat = read_text(entry.path().string() + "/stat");
    const auto parent = parse_ppid(stat);
    const auto t = parse_cpu_ticks(stat);
    if (!parent || !t) continue;  // gone meanwhile
    const long id = std::stol(name);
    children[*parent].push_back(id);
    ticks[id] = *t;
  }
  if (!ticks.count(pid)) return std::nullopt;
  std::uint64_t total = 0;
  std::vector<long> todo{pid};
  while (!todo.empty()) {
    const long id = todo.back();
    todo.pop_back();
    total += ticks[id];
    for (long child : children[id]) todo.push_back(child);
  }
  return static_cast<double>(total) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// The CPU of `who`: RUSAGE_CHILDREN, the children this process has reaped
// so far; RUSAGE_SELF, this process.
double rusage_seconds(int who) {
  rusage use{};
  ::getrusage(who, &use);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return seconds(use.ru_utime) + seconds(use.ru_stime);
}

// Every CPU's busy jiffies since boot, from /proc/stat.
std::optional<std::uint64_t> machine_busy_jiffies() { return parse_busy_jiffies(read_text("/proc/stat")); }

std::string arg(double v) { return fmt::format("{}", v); }

// The command's outcome; nothing when it is not installed.
std::optional<command_result> try_command(std::vector<std::string> argv) {
  try {
    return run_command(std::move(argv), 30s);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

enum class counter { perf, strace, none };

counter find_syscall_counter() {
  const auto perf = try_command({"perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "--", "true"});
  if (perf && perf->status == 0 && parse_perf_count(perf->err)) return counter::perf;
  const auto strace = try_command({"strace", "-c", "-f", "-o", "/dev/null", "true"});
  if (strace && strace->status == 0) return counter::strace;
  return counter::none;
}

bool callgrind_works() {
  const auto r = try_command({"valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", "true"});
  return r && r->status == 0;
}

// The outcome of one server in one scenario.
struct run_result {
  std::optional<load_figures> load;
  double cpu_us_per_rt = missing;
  double bytes_per_conn = missing;
  double instructions_per_rt = missing;
  double generator_cpu = missing;
  double other_cpu = missing;  // percent of one CPU other processes took
  double spread = missing;
  std::string per_worker;
  std::optional<double> syscalls_per_rt;
  std::string note;
  bool unavailable = false;  // exit 69: this backend cannot be set up here
  bool failed = false;       // something that should have worked did not
};

class driver {
 public:
  explicit driver(options opts) : opts_(std::move(opts)) {
    const auto dir = std::filesystem::path(this_program()).parent_path();
    switchboard_ = this_program();
    bench_dir_ = (dir / "bench").string();
    allowed_ = allowed_cpus();
    const auto single = place(scenario{}, allowed_);
    server_cpus_ = single->server;
    generator_cpus_ = single->generators;
  }

  int run() {
    const std::string loadgen = bench_dir_ + "/bench-loadgen";
    if (!std::filesystem::exists(loadgen)) {
      fmt::print(stderr, "bench: {} is missing (configure without -Dbench=disabled and build)\n", loadgen);
      return exit_failure;
    }
    servers_ = servers_for(opts_.backends, opts_.with_baselines, opts_.traced);
    std::erase_if(servers_, [&](const server_spec& s) {
      const bool present = !s.backend.empty() || std::filesystem::exists(bench_dir_ + "/" + s.name);
      if (!present) fmt::print(stderr, "bench: {} was not built here; left out\n", s.name);
      return !present;
    });
    describe_machine();
    std::erase_if(opts_.scenarios, [&](const std::string& name) {
      const scenario& scen = *find_scenario(name);
      const auto where = place(scen, allowed_);
      if (!where) {
        fmt::print(stderr, "bench: {} left out: its {} workers and the generators need {} CPUs, {} allowed here\n",
                   name, scen.workers, 2 * scen.workers, allowed_.size());
      } else if (scen.workers > 0) {
        fmt::print(stderr, "bench: {}: server on CPU(s) {}, {} load generator(s) on CPU(s) {}\n", name,
                   where->server.empty() ? "any" : fmt::format("{}", fmt::join(where->server, ",")),
                   where->generator_count,
                   where->generators.empty() ? "any" : fmt::format("{}", fmt::join(where->generators, ",")));
      }
      return !where;
    });
    for (const std::string& name : opts_.scenarios) {
      for (const server_spec& s : servers_) {
        if (runs_in(s, *find_scenario(name))) {
          cells_.push_back(cell{s.name, name, nan_vector(), nan_vector(), nan_vector(), nan_vector(),
                                nan_vector(), nan_vector(), std::nullopt, 0, {}, nan_vector(), nan_vector(), {},
                                nan_vector()});
        }
      }
    }

    for (int pair = 0; pair < opts_.pairs && !interrupted; ++pair) {
      for (const std::string& name : opts_.scenarios) {
        const scenario& scen = *find_scenario(name);
        std::vector<const server_spec*> order;
        for (const server_spec& s : servers_) {
          if (runs_in(s, scen)) order.push_back(&s);
        }
        // Round-robin: each pair starts one server later, so drift over time cancels.
        std::rotate(order.begin(), order.begin() + static_cast<long>(pair % std::max<std::size_t>(order.size(), 1)),
                    order.end());
        for (const server_spec* s : order) {
          if (interrupted) break;
          record(pair, *s, scen, measure(*s, scen, opts_.seconds, counter::none));
        }
      }
    }
    count_syscalls();
    if (interrupted) {
      fmt::print(stderr, "bench: interrupted\n");
      return exit_failure;
    }

    const auto rows = summarize(cells_, servers_);
    fmt::print("\n{}", format_table(rows));
    fmt::print("medians over {} alternating pair(s) of {} s runs; syscalls/RT from a {} s run counted with {};\n"
               "instr/RT: callgrind's count over 2N round trips less that over N, divided by N;\n"
               "ratio: switchboard to the hand-written loop of the same mechanism, in rps\n"
               "(CPU us/RT when paced, instr/RT when counted); with --workers N (-wN), to -w1;\n"
               "CPU us/RT: the server's processes (a supervisor and its workers) together;\n"
               "gen CPU %: the load generators' CPU over their time, 100 = every one busy throughout;\n"
               "other %: CPU that other processes took during the run (/proc/stat's busy time less the\n"
               "server's, the generators' and the driver's), in percent of one CPU;\n"
               "max/min: most over fewest connections per worker (SIGUSR1's open counts)\n",
               opts_.pairs, opts_.seconds, syscall_seconds(), counter_name());
    if (const auto busy = busy_machine_line(cells_)) fmt::print("{}\n", *busy);
    for (const std::string& line : judge_targets(rows, allowed_.size())) fmt::print("{}\n", line);
    if (!opts_.plot.empty()) {
      std::ofstream out(opts_.plot);
      out << svg_chart(rows);
      if (!out) {
        fmt::print(stderr, "bench: cannot write {}\n", opts_.plot);
        failed_ = true;
      } else {
        fmt::print("plot written to {}\n", opts_.plot);
      }
    }
    return failed_ ? exit_failure : 0;
  }

 private:
  std::vector<double> nan_vector() const { return std::vector<double>(static_cast<std::size_t>(opts_.pairs), missing); }

  double syscall_seconds() const { return std::min(opts_.seconds, 1.0); }

  const char* counter_name() const {
    switch (counter_) {
      case counter::perf: return "perf stat -e raw_syscalls:sys_enter";
      case counter::strace: return "strace -c -f";
      case counter::none: break;
    }
    return "nothing (neither perf nor strace works here: n/a)";
  }

  void describe_machine() {
    std::string model = "unknown CPU";
    std::istringstream info(read_text("/proc/cpuinfo"));
    for (std::string line; std::getline(info, line);) {
      if (line.rfind("model name", 0) == 0) {
        model = line.substr(line.find(':') + 2);
        break;
      }
    }
    if (server_cpus_.empty()) {
      fmt::print(stderr, "bench: only one CPU is usable: server and load generator share it (no pinning)\n");
    } else {
      fmt::print(stderr, "bench: {} CPU(s), {}; server on CPU {}, {} load generator(s) on CPU(s) {}\n",
                 allowed_cpus().size(), model, server_cpus_.front(), generator_cpus_.size(),
                 fmt::join(generator_cpus_, ","));
    }
  }

  cell& cell_for(const std::string& server, const std::string& scen) {
    for (cell& c : cells_) {
      if (c.server == server && c.scenario == scen) return c;
    }
    throw std::logic_error("no cell for " + server + " " + scen);
  }

  void record(int pair, const server_spec& s, const scenario& scen, const run_result& r) {
    cell& c = cell_for(s.name, scen.name);
    const auto i = static_cast<std::size_t>(pair);
    if (r.load) {
      c.rps[i] = r.load->rps;
      c.p50_us[i] = r.load->p50_us;
      c.p99_us[i] = r.load->p99_us;
      c.errors += r.load->errors;
    }
    c.cpu_us_per_rt[i] = r.cpu_us_per_rt;
    c.bytes_per_conn[i] = r.bytes_per_conn;
    c.instructions_per_rt[i] = r.instructions_per_rt;
    c.generator_cpu[i] = r.generator_cpu;
    c.other_cpu[i] = r.other_cpu;
    c.spread[i] = r.spread;
    if (!r.per_worker.empty()) c.per_worker = r.per_worker;
    if (!r.note.empty() && c.note.find(r.note) == std::string::npos) {
      c.note += (c.note.empty() ? "" : "; ") + r.note;
    }
    if (r.failed) failed_ = true;
    if (r.unavailable) unavailable_.push_back(s.name);
    std::string figure = "no figure";
    if (!r.per_worker.empty()) {
      figure = fmt::format("{:.2f} max/min ({} per worker)", r.spread, r.per_worker);
    } else if (scen.hold && std::isfinite(r.bytes_per_conn)) {
      figure = fmt::format("{:.0f} B/conn", r.bytes_per_conn);
    } else if (std::isfinite(r.instructions_per_rt)) {
      figure = fmt::format("{:.0f} instr/RT", r.instructions_per_rt);
    } else if (r.load) {
      figure = fmt::format("{:.0f} rps, {:.2f} CPU us/RT, p99 {:.0f} us, others {:.0f}% of a CPU", r.load->rps,
                           r.cpu_us_per_rt, r.load->p99_us, r.other_cpu);
    }
    fmt::print(stderr, "bench: pair {}/{} {:<12} {:<20} {}{}\n", pair + 1, opts_.pairs, scen.name, s.name, figure,
               r.note.empty() ? "" : " (" + r.note + ")");
  }

  std::vector<std::string> server_argv(const server_spec& s, const scenario& scen) const {
    if (s.backend.empty()) return {bench_dir_ + "/" + s.name, "--port", "0"};
    // No idle timeout: the idle-crowd and memory scenarios keep silent
    // connections, up to 10,000 of them from 127.0.0.1.
    std::vector<std::string> argv{switchboard_, "echo", "--port", "0", "--backend", s.backend,
                                  "--idle-timeout", "0", "--max-connections-per-source", "1000000",
                                  "--drain-timeout", "1"};
    if (s.traced) argv.insert(argv.end(), {"--trace", scratch_.file("trace.json"), "--trace-limit", "1000000000"});
    if (scen.workers > 0) argv.insert(argv.end(), {"--workers", std::to_string(scen.workers)});
    return argv;
  }

  // Splits the scenario's connections (and rate, or count of round trips)
  // over the generators; round_trips 0 runs them for `seconds`.
  std::vector<std::unique_ptr<child_process>> start_generators(const scenario& scen, std::uint16_t port,
                                                                double seconds, std::uint32_t round_trips) const {
    const placement where = *place(scen, allowed_);
    const std::size_t n = where.generator_count;
    std::vector<std::unique_ptr<child_process>> gens;
    for (std::size_t i = 0; i < n; ++i) {
      auto share = [&](std::uint32_t total) { return total / n + (i < total % n ? 1 : 0); };
      std::vector<std::string> argv{bench_dir_ + "/bench-loadgen", "--port", std::to_string(port),
                                    "--connections", std::to_string(share(scen.connections)),
                                    "--size", std::to_string(scen.size), "--seconds", arg(seconds),
                                    "--warmup", "0"};
      if (scen.idle) argv.insert(argv.end(), {"--idle", std::to_string(share(scen.idle))});
      if (scen.rate > 0) argv.insert(argv.end(), {"--rate", arg(scen.rate / static_cast<double>(n))});
      if (scen.hold) argv.push_back("--hold");
      argv.insert(argv.end(), {"--pipeline", std::to_string(scen.pipeline)});
      if (round_trips) argv.insert(argv.end(), {"--round-trips", std::to_string(share(round_trips))});
      std::vector<int> cpus;
      if (!where.generators.empty()) cpus = {where.generators[i % where.generators.size()]};
      gens.push_back(spawn_on(std::move(argv), cpus));
    }
    return gens;
  }

  // One server in one scenario; with a counter, only the syscall count.
  run_result measure(const server_spec& s, const scenario& scen, double seconds, counter with) {
    run_result r;
    if (std::find(unavailable_.begin(), unavailable_.end(), s.name) != unavailable_.end()) {
      r.note = "unavailable here";
    } else if (scen.counted_round_trips > 0) {
      count_instructions(s, scen, r);
    } else {
      serve(s, scen, {}, r, [&](child_process& server) {
        if (scen.hold && scen.workers > 0) {
          spread(server, scen, r);
        } else if (scen.hold) {
          hold(server, scen, r);
        } else {
          traffic(server, scen, seconds, with, r);
        }
      });
    }
    return r;
  }

  // Starts the server, under `wrapper` (valgrind) when one is given, lets
  // `use` drive it and stops it by PID with SIGTERM. True when it started and
  // exited on its own.
  bool serve(const server_spec& s, const scenario& scen, const std::vector<std::string>& wrapper, run_result& r,
             const std::function<void(child_process&)>& use) {
    std::vector<std::string> argv = wrapper;
    for (std::string& a : server_argv(s, scen)) argv.push_back(std::move(a));
    // valgrind takes seconds to start, and to write its file at exit.
    const auto patience = wrapper.empty() ? 10s : 120s;
    // A supervisor's workers inherit the CPUs it is started on.
    auto server = spawn_on(std::move(argv), place(scen, allowed_)->server);
    if (server->wait_listening(patience) == 0) {
      const auto status = server->wait_exit(2s);
      r.unavailable = status == exit_unavailable;
      r.failed = !r.unavailable;
      r.note = r.unavailable ? "unavailable here" : fmt::format("server did not start (status {})", status.value_or(-1));
      return false;
    }
    use(*server);
    server->signal(SIGTERM);
    if (server->wait_exit(patience)) return true;
    r.note = "server ignored SIGTERM; killed";
    return false;
  }

  // Waits for the generators and adds up their figures; nothing when one
  // hung or printed none.
  std::optional<load_figures> collect(std::vector<std::unique_ptr<child_process>>& gens, double seconds,
                                      run_result& r) {
    std::vector<load_figures> parts;
    for (auto& g : gens) {
      if (!g->wait_exit(std::chrono::milliseconds(static_cast<long>(seconds * 1000)) + 120s)) {
        r.note = "load generator hung";
        r.failed = true;
        continue;
      }
      if (auto f = parse_loadgen_output(g->out())) {
        parts.push_back(*f);
      } else {
        r.note = "load generator gave no figures";
        r.failed = true;
      }
    }
    if (parts.size() != gens.size()) return std::nullopt;
    return combine(parts);
  }

  void traffic(child_process& server, const scenario& scen, double seconds, counter with, run_result& r) {
    std::unique_ptr<child_process> tracer;
    const std::string pid = std::to_string(server.pid());
    if (with == counter::perf) {
      tracer = spawn_on({"perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p", pid}, generator_cpus_);
    } else if (with == counter::strace) {
      tracer = spawn_on({"strace", "-c", "-f", "-p", pid}, generator_cpus_);
    }
    if (tracer) std::this_thread::sleep_for(300ms);  // attached before the traffic starts
    const auto cpu_before = cpu_seconds(server.pid());
    const double reaped_before = rusage_seconds(RUSAGE_CHILDREN);
    const double driver_before = rusage_seconds(RUSAGE_SELF);
    const auto busy_before = machine_busy_jiffies();
    const auto started = std::chrono::steady_clock::now();
    auto gens = start_generators(scen, server.wait_listening(0ms), seconds, 0);
    r.load = collect(gens, seconds, r);
    // collect reaped the generators: what reaped children used since is theirs.
    const std::chrono::duration<double> wall = std::chrono::steady_clock::now() - started;
    const auto busy_after = machine_busy_jiffies();
    const double generators_s = rusage_seconds(RUSAGE_CHILDREN) - reaped_before;
    const double driver_s = rusage_seconds(RUSAGE_SELF) - driver_before;
    if (!gens.empty() && wall.count() > 0) {
      r.generator_cpu = generators_s / (wall.count() * static_cast<double>(gens.size()));
    }
    // A forking server's children count (cutime, cstime) once it has reaped them.
    std::this_thread::sleep_for(300ms);
    const auto cpu_after = cpu_seconds(server.pid());
    // The server was idle since the generators ended: its CPU belongs to the run.
    if (busy_before && busy_after && cpu_before && cpu_after) {
      const double ours_s = (*cpu_after - *cpu_before) + generators_s + driver_s;
      const auto other = other_cpu_percent(*busy_before, *busy_after, ::sysconf(_SC_CLK_TCK), ours_s, wall.count());
      if (other) r.other_cpu = *other;
    }
    if (!r.load) return;
    if (r.load->errors) r.note = "load generator saw errors";
    if (r.load->round_trips == 0) return;
    const double trips = static_cast<double>(r.load->round_trips);
    if (cpu_before && cpu_after) r.cpu_us_per_rt = (*cpu_after - *cpu_before) * 1e6 / trips;
    if (!tracer) return;
    tracer->signal(SIGINT);
    tracer->wait_exit(10s);
    const auto calls = with == counter::perf ? parse_perf_count(tracer->err()) : parse_strace_total(tracer->err());
    if (calls) r.syscalls_per_rt = static_cast<double>(*calls) / trips;
  }

  // Opens the scenario's connections and holds them; RSS growth over the
  // descriptors the server gained (a select loop refuses some, a forking
  // server keeps them in its children).
  void hold(child_process& server, const scenario& scen, run_result& r) {
    const pid_t pid = server.pid();
    const std::size_t rss_before = rss_kib(pid);
    const std::size_t fds_before = open_fds(pid);
    auto gens = start_generators(scen, server.wait_listening(0ms), 1, 0);
    const auto deadline = std::chrono::steady_clock::now() + 120s;
    for (auto& g : gens) {
      while (g->out().find("ready") == std::string::npos && !g->wait_exit(0ms) &&
             std::chrono::steady_clock::now() < deadline && !interrupted) {
        std::this_thread::sleep_for(20ms);
      }
    }
    // Connected is not yet accepted: wait until the server's descriptors settle.
    std::size_t fds = open_fds(pid);
    for (int still = 0; still < 5 && std::chrono::steady_clock::now() < deadline;) {
      std::this_thread::sleep_for(100ms);
      const std::size_t now = open_fds(pid);
      still = now == fds ? still + 1 : 0;
      fds = now;
    }
    const std::size_t held = fds > fds_before ? fds - fds_before : 0;
    const std::size_t rss_after = rss_kib(pid);
    // A forking server keeps its connections in its children: nothing to divide by.
    if (held * 100 >= scen.connections && rss_after >= rss_before) {
      r.bytes_per_conn = static_cast<double>(rss_after - rss_before) * 1024.0 / static_cast<double>(held);
    }
    if (held < scen.connections) r.note = fmt::format("server holds {} of {} descriptors", held, scen.connections);
    for (auto& g : gens) g->signal(SIGTERM);
    for (auto& g : gens) g->wait_exit(30s);
  }

  // Opens the scenario's idle connections to a server with workers and asks
  // it (SIGUSR1) how many each worker holds, until they add up to all of them.
  void spread(child_process& server, const scenario& scen, run_result& r) {
    auto gens = start_generators(scen, server.wait_listening(0ms), 1, 0);
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    for (auto& g : gens) {
      while (g->out().find("ready") == std::string::npos && !g->wait_exit(0ms) &&
             std::chrono::steady_clock::now() < deadline && !interrupted) {
        std::this_thread::sleep_for(20ms);
      }
    }
    std::vector<std::uint64_t> counts;
    std::uint64_t held = 0;
    while (std::chrono::steady_clock::now() < deadline && !interrupted) {
      const std::string before = server.err();
      server.signal(SIGUSR1);
      // The supervisor's sum line comes after every worker's own (or a second).
      std::string after;
      for (int i = 0; i < 40; ++i) {
        std::this_thread::sleep_for(50ms);
        after = server.err();
        if (after.find("stats (all", before.size()) != std::string::npos) break;
      }
      counts = worker_open_counts(std::string_view(after).substr(std::min(before.size(), after.size())));
      held = 0;
      for (auto c : counts) held += c;
      if (counts.size() == scen.workers && held >= scen.connections) break;
      std::this_thread::sleep_for(200ms);
    }
    if (const auto ratio = spread_ratio(counts)) r.spread = *ratio;
    r.per_worker = fmt::format("{}", fmt::join(counts, "/"));
    if (counts.size() != scen.workers || held < scen.connections) {
      r.note = fmt::format("{} workers reported {} of {} connections", counts.size(), held, scen.connections);
    }
    for (auto& g : gens) g->signal(SIGTERM);
    for (auto& g : gens) g->wait_exit(30s);
  }

  // Server instructions per round trip, from callgrind: the difference
  // between a run of 2N round trips and one of N, so that valgrind's and the
  // server's start-up, the connections' set-up and the shutdown cancel out.
  void count_instructions(const server_spec& s, const scenario& scen, run_result& r) {
    if (!callgrind_) callgrind_ = callgrind_works();
    if (!*callgrind_) {
      r.note = "valgrind --tool=callgrind does not run here";
      return;
    }
    const std::uint32_t n = scen.counted_round_trips;
    const auto over_n = instructions_over(s, scen, n, r);
    const auto over_2n = over_n ? instructions_over(s, scen, 2 * n, r) : std::nullopt;
    if (!over_2n) return;
    if (const auto per_rt = instructions_per_rt(*over_n, *over_2n, n)) r.instructions_per_rt = *per_rt;
  }

  // The instructions callgrind counts in the server over a run of exactly
  // `round_trips` round trips, from start to exit.
  std::optional<std::uint64_t> instructions_over(const server_spec& s, const scenario& scen,
                                                 std::uint32_t round_trips, run_result& r) {
    const temp_dir dir;
    const std::string file = dir.file("callgrind.out");
    bool complete = false;
    const bool exited = serve(s, scen, {"valgrind", "--tool=callgrind", "--callgrind-out-file=" + file}, r,
                              [&](child_process& server) {
                                auto gens = start_generators(scen, server.wait_listening(0ms),
                                                             counted_run_limit_s, round_trips);
                                const auto load = collect(gens, counted_run_limit_s, r);
                                complete = load && load->errors == 0 && load->round_trips == round_trips;
                                if (load && !complete) {
                                  r.note = fmt::format("{} of {} round trips, {} errors", load->round_trips,
                                                       round_trips, load->errors);
                                }
                              });
    if (r.unavailable) {
      // Perhaps only under valgrind (io_uring, with a valgrind that lacks its
      // system calls): the server's other scenarios still run.
      r.unavailable = false;
      r.note = "unavailable under valgrind";
    }
    if (!exited || !complete) return std::nullopt;
    return parse_callgrind_total(read_text(file));
  }

  void count_syscalls() {
    counter_ = find_syscall_counter();
    if (counter_ == counter::none) return;
    for (const std::string& name : opts_.scenarios) {
      const scenario& scen = *find_scenario(name);
      // perf and strace attach to the one process: a supervisor's workers escape them.
      if (scen.hold || scen.counted_round_trips > 0 || scen.workers > 0) continue;
      for (const server_spec& s : servers_) {
        if (interrupted) return;
        if (!runs_in(s, scen)) continue;
        const run_result r = measure(s, scen, syscall_seconds(), counter_);
        cell_for(s.name, name).syscalls_per_rt = r.syscalls_per_rt;
        fmt::print(stderr, "bench: syscalls {:<12} {:<20} {}\n", name, s.name,
                   r.syscalls_per_rt ? fmt::format("{:.2f}/RT", *r.syscalls_per_rt) : "n/a");
      }
    }
  }

  options opts_;
  std::string switchboard_;
  std::string bench_dir_;
  std::vector<int> allowed_;
  std::vector<int> server_cpus_;
  std::vector<int> generator_cpus_;
  std::vector<server_spec> servers_;
  std::vector<cell> cells_;
  std::vector<std::string> unavailable_;
  counter counter_ = counter::none;
  std::optional<bool> callgrind_;  // whether valgrind's callgrind runs here, once asked
  temp_dir scratch_;               // the traced servers' trace file, rewritten by each run
  bool failed_ = false;
};

void on_stop(int) { interrupted = true; }

}  // namespace

void add_command(CLI::App& app, services::command_list& commands) {
  auto raw = std::make_shared<raw_options>();
  CLI::App* cmd = app.add_subcommand(
      "bench", "compare the backends: switchboard's echo (and the hand-written loops) under bench-loadgen");
  add_options(*cmd, *raw);
  commands.push_back({cmd, [raw] {
                        auto r = resolve(*raw);
                        if (!r.ok()) {
                          fmt::print(stderr, "bench: {}\n", r.error);
                          return exit_usage;
                        }
                        prepare_process();
                        struct sigaction stop {};
                        stop.sa_handler = on_stop;
                        ::sigaction(SIGINT, &stop, nullptr);
                        ::sigaction(SIGTERM, &stop, nullptr);
                        return driver(std::move(r.opts)).run();
                      }});
}

}  // namespace switchboard::tools::bench
