// The benchmark driver's pure logic: the scenario catalogue, the options,
// reading the load generator's and the counters' output, how busy the machine
// was, medians and ratios, the targets and the table (the picture is
// plot.hpp's). No processes here, so the unit tests cover all of it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

namespace switchboard::tools::bench {

struct scenario {
  std::string name;
  std::uint32_t connections = 0;  // active (or, with hold, idle) connections
  std::uint32_t size = 64;
  std::uint32_t idle = 0;         // silent connections beside the active ones
  double rate = 0;                // paced round trips per second, 0 = as fast as possible
  bool hold = false;              // memory: open the connections, no traffic
  std::uint32_t counted_round_trips = 0;  // instructions: N, then 2N round trips under callgrind
  std::uint32_t workers = 0;      // switchboard's --workers N; 0 = a single server, no option
  std::string measures;           // one line for the docs and --help
  std::uint32_t pipeline = 1;     // messages in flight per connection
};

// Every scenario the driver knows, in the order they run.
const std::vector<scenario>& scenario_catalogue();
const scenario* find_scenario(std::string_view name);

// The scenarios a group name stands for, in catalogue order: "sweep" (64 B
// unpaced from 1 to 5,000 connections), "idle-sweep" (50 active beside 0 to
// 5,000 idle), "workers" (every -wN) and any NAME-wN family ("scale",
// "spread", "paced"); empty for a name that is no group.
std::vector<std::string> scenario_group(std::string_view name);

// The scenario with one worker that a scenario with N workers is compared
// to ("scale-w4" -> "scale-w1"); empty for the others and for w1 itself.
std::string one_worker_counterpart(const scenario& s);

// Which CPUs the server and the load generators are pinned to (empty: not
// pinned, they share every allowed CPU) and how many generators run.
struct placement {
  std::vector<int> server;
  std::vector<int> generators;
  std::size_t generator_count = 1;
};
// From the CPUs this process may use. A single server: one CPU, the
// generators on up to 4 others. Scaling (workers, unpaced, traffic): N CPUs
// for the server's N workers and every other CPU (at least N) for the
// generators; nothing when the machine has fewer than 2N. Paced with
// workers: server and one generator share every CPU, the same for every N.
// Spread (workers, held): pinned as for scaling where 2N CPUs exist, shared
// otherwise.
std::optional<placement> place(const scenario& s, const std::vector<int>& allowed);

// The servers: switchboard's echo on a backend, or a program in build/bench/.
struct server_spec {
  std::string name;       // "switchboard-epoll", "echo-epoll", ...
  std::string backend;    // switchboard's backend; empty for a baseline
  std::string mechanism;  // "epoll" for both switchboard-epoll and echo-epoll
  bool iterative = false; // answers one connection at a time: only 1 and 2 connections
  bool forks = false;     // serves each connection in a child process of its own
  bool traced = false;    // switchboard with --trace on: what tracing costs
};

// switchboard on each backend (each followed by its traced twin when
// `traced`), then (with baselines) the matching loops and the other models.
std::vector<server_spec> servers_for(const std::vector<std::string>& backends, bool with_baselines,
                                     bool traced = false);
// Whether `server` takes part in `s`: the iterative server only where it can
// answer, a forking one not under callgrind (each child would count apart).
bool runs_in(const server_spec& server, const scenario& s);

struct options {
  std::vector<std::string> backends{"select", "epoll", "uring"};
  std::vector<std::string> scenarios;  // names; empty until resolved
  double seconds = 3;
  int pairs = 3;
  bool with_baselines = false;
  bool traced = false;
  std::string plot;  // SVG file, empty for none
  bool quick = false;
};

// The options as CLI11 leaves them, before the defaults that hang on --quick.
struct raw_options {
  std::string backends = "select,epoll,uring";
  std::string scenarios;
  std::optional<double> seconds;
  std::optional<int> pairs;
  bool with_baselines = false;
  bool traced = false;
  std::string plot;
  bool quick = false;
};

void add_options(CLI::App& cmd, raw_options& raw);

// Checks the lists and applies the defaults; on error, a one-line reason.
struct resolved {
  options opts;
  std::string error;
  bool ok() const { return error.empty(); }
};
resolved resolve(const raw_options& raw);

// Comma-separated list, empty items dropped.
std::vector<std::string> split_list(std::string_view text);

// One line of bench-loadgen output: `key=value` pairs separated by spaces.
std::map<std::string, std::string> parse_key_values(std::string_view line);

struct load_figures {
  double rps = 0;
  double p50_us = 0;
  double p99_us = 0;
  std::uint64_t round_trips = 0;
  std::uint64_t errors = 0;
  std::uint64_t connections = 0;  // active + idle established
};
// The figures from bench-loadgen's stdout (its last line with rps=); nothing
// when there is no such line.
std::optional<load_figures> parse_loadgen_output(std::string_view out);
// Several generators against one server: counts add up, and the latency
// percentiles are the worst generator's (they cannot be merged exactly).
load_figures combine(const std::vector<load_figures>& parts);

// The parent PID (field 4) from /proc/PID/stat text.
std::optional<long> parse_ppid(std::string_view stat);
// Each worker's open connections from the server's SIGUSR1 lines
// ("echo: worker 2 (pid 4243): stats: open 3 ..."), the last line of each
// worker, in the order of their numbers.
std::vector<std::uint64_t> worker_open_counts(std::string_view err);
// max / min of the counts; nothing when there are none, infinity when a
// worker holds none.
std::optional<double> spread_ratio(const std::vector<std::uint64_t>& counts);

// The jiffies every CPU together spent busy since boot, from the aggregate
// `cpu` line of /proc/stat: the total less idle and iowait (guest time is
// already inside user and nice, so it is not added again).
std::optional<std::uint64_t> parse_busy_jiffies(std::string_view proc_stat);
// The CPU that processes other than the benchmark's own took during a run,
// in percent of one CPU (100 = one CPU busy elsewhere throughout): the
// machine's busy jiffies over the run less `ours_s` (server, generators,
// driver), over `wall_s`. Never below 0: the counters tick apart. Nothing
// when the counts go backwards or no time passed.
std::optional<double> other_cpu_percent(std::uint64_t busy_before, std::uint64_t busy_after, long jiffies_per_s,
                                        double ours_s, double wall_s);
// Above this many percent of one CPU taken by others, a run's figures may
// be disturbed.
constexpr double busy_machine_percent = 10;

// utime + stime + cutime + cstime, in clock ticks, from /proc/PID/stat text.
std::optional<std::uint64_t> parse_cpu_ticks(std::string_view stat);
// The count from `perf stat -x,` output (first field of the event's line).
std::optional<std::uint64_t> parse_perf_count(std::string_view out);
// The calls column of the `total` line of `strace -c` output.
std::optional<std::uint64_t> parse_strace_total(std::string_view out);
// The instructions (Ir) a callgrind output file counted: its `totals:` or
// `summary:` line.
std::optional<std::uint64_t> parse_callgrind_total(std::string_view file);
// Instructions per round trip from a run of n and one of 2n round trips: the
// start-up, connection set-up and shutdown both runs share cancel out.
std::optional<double> instructions_per_rt(std::uint64_t over_n, std::uint64_t over_2n, std::uint32_t n);

// Median of the finite values; nothing when there are none.
std::optional<double> median(std::vector<double> values);
// Median over pairs of a[i] / b[i], where both runs of pair i gave a figure.
std::optional<double> paired_ratio(const std::vector<double>& a, const std::vector<double>& b);

// Everything measured for one server in one scenario. Per-pair vectors hold
// NaN for a run that gave no figure.
struct cell {
  std::string server;
  std::string scenario;
  std::vector<double> rps, p50_us, p99_us, cpu_us_per_rt, bytes_per_conn, instructions_per_rt;
  std::optional<double> syscalls_per_rt;
  std::uint64_t errors = 0;  // summed over runs
  std::string note;          // why a figure is missing
  // The generators' CPU as a share of theirs (1 = every generator busy all
  // the time), and the spread's max/min connections per worker.
  std::vector<double> generator_cpu, spread;
  std::string per_worker;  // the connections per worker of the last run, "510/490"
  std::vector<double> other_cpu{};  // other processes' CPU, percent of one CPU
};

struct row {
  std::string server;
  std::string scenario;
  std::optional<double> rps, p50_us, p99_us, cpu_us_per_rt, syscalls_per_rt, bytes_per_conn, instructions_per_rt;
  std::optional<double> ratio;  // to the hand-written loop of the same mechanism, or to one worker
  std::optional<double> ratio_min, ratio_max;  // the lowest and highest pair's; ratio is their median
  std::uint64_t errors = 0;
  std::string note;
  std::optional<double> generator_cpu, spread;
  std::string per_worker;
  std::optional<double> other_cpu{};  // median percent of one CPU taken by other processes
  std::optional<double> p99_ratio{};  // median per-pair p99 against the loop of the same mechanism
};

// Medians per cell and the ratio of switchboard-X to echo-X (the median of
// the per-pair ratios, with the lowest and the highest of them): in rps, in CPU
// per round trip for a paced scenario, in instructions per round trip for a
// counted one (none for memory); beside it p99 against the loop's where both
// carry traffic. A scenario with N > 1 workers: the ratio to
// the same server with one worker, in rps (scaling) or CPU per round trip
// (paced).
std::vector<row> summarize(const std::vector<cell>& cells, const std::vector<server_spec>& servers);

// The table, one row per server and scenario; `n/a` where a figure is missing.
std::string format_table(const std::vector<row>& rows);

// "busy machine: ..." naming each cell where a run had other processes
// take more than busy_machine_percent of one CPU; nothing when none did.
std::optional<std::string> busy_machine_line(const std::vector<cell>& cells);

// One line per target (issue 14's, issue 5's it left, issue 13's workers) the rows allow judging,
// "target met: ..." or "target MISSED: ..."; `cpus`, the CPUs allowed here,
// decides which worker targets this machine can judge (0: none of those
// that need cores), and says "target not judged: ..." for the others.
std::vector<std::string> judge_targets(const std::vector<row>& rows, std::size_t cpus = 0);

}  // namespace switchboard::tools::bench
