#include "bench_core.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include <fmt/format.h>

namespace switchboard::tools::bench {
namespace {

bool known_backend(std::string_view name) {
  return name == "select" || name == "epoll" || name == "uring";
}

// Scenarios --quick runs when none are named: one of each kind, all short.
const std::vector<std::string> quick_scenarios{"50x64", "500x64", "50x16k", "paced", "memory"};

std::optional<std::uint64_t> to_count(std::string_view text) {
  std::uint64_t value = 0;
  bool any = false;
  for (char c : text) {
    if (c == ',' || c == '.') continue;  // perf may group digits
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
    any = true;
  }
  return any ? std::optional(value) : std::nullopt;
}

std::vector<std::string> words(std::string_view line) {
  std::istringstream in{std::string(line)};
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

std::string show(const std::optional<double>& v, int decimals) {
  return v ? fmt::format("{:.{}f}", *v, decimals) : "n/a";
}

const row* find_row(const std::vector<row>& rows, std::string_view server, std::string_view scen) {
  for (const row& r : rows) {
    if (r.server == server && r.scenario == scen) return &r;
  }
  return nullptr;
}

std::string verdict(bool met) { return met ? "target met: " : "target MISSED: "; }

// Generators this busy may be what limits the rate, not the server.
constexpr double saturated = 0.9;

// Issue 13's targets for --workers: rps scales (where the machine has the
// cores and the generators keep up), paced CPU per round trip does not grow,
// the connections spread evenly over eight workers.
void judge_worker_targets(const std::vector<row>& rows, std::size_t cpus, std::vector<std::string>& out) {
  for (const row& r : rows) {
    const scenario* s = find_scenario(r.scenario);
    if (!s || s->workers <= 1) continue;
    const std::uint32_t n = s->workers;
    if (s->rate > 0 && r.ratio) {
      out.push_back(verdict(*r.ratio <= 1.05) +
                    fmt::format("{} CPU per round trip at {} is {:.2f}x one worker's (target <= 1.05x)", r.server,
                                r.scenario, *r.ratio));
    } else if (s->rate == 0 && !s->hold && r.ratio) {
      const row* one = find_row(rows, r.server, one_worker_counterpart(*s));
      const double busiest = std::max(r.generator_cpu.value_or(1), one ? one->generator_cpu.value_or(1) : 1);
      const std::string what = fmt::format("{} rps at {} is {:.2f}x one worker's (target >= {:.1f}x)", r.server,
                                           r.scenario, *r.ratio, 0.8 * n);
      if (cpus < 2 * n) {
        out.push_back("target not judged: " + what + fmt::format(": needs {} CPUs, {} here", 2 * n, cpus));
      } else if (busiest >= saturated) {
        out.push_back("target not judged: " + what +
                      fmt::format(": the generators were {:.0f}% busy", busiest * 100));
      } else {
        out.push_back(verdict(*r.ratio >= 0.8 * n) + what);
      }
    } else if (s->hold && n == 8 && r.spread) {
      const std::string what =
          fmt::format("{} max/min connections per worker at {} is {:.2f} (target <= 1.5)", r.server, r.scenario,
                      *r.spread);
      if (cpus < 2 * n) {
        out.push_back("target not judged: " + what + fmt::format(": needs {} CPUs, {} here", 2 * n, cpus));
      } else {
        out.push_back(verdict(*r.spread <= 1.5) + what);
      }
    }
  }
}

// The median where a worker that held nothing (infinity) counts too.
std::optional<double> spread_median(std::vector<double> values) {
  std::erase_if(values, [](double v) { return std::isnan(v); });
  if (values.empty()) return std::nullopt;
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// The connection sweeps, in catalogue order; 50x64 is the point both share.
const std::vector<std::string> connection_sweep{"1x64",   "10x64",   "50x64",   "100x64",
                                                "500x64", "1000x64", "2000x64", "5000x64"};
const std::vector<std::string> idle_sweep{"50x64", "50+500idle", "50+1000idle", "50+2000idle", "50+5000idle"};

}  // namespace

const std::vector<scenario>& scenario_catalogue() {
  static const std::vector<scenario> all{
      {"1x64", 1, 64, 0, 0, false, 0, 0, "one connection, 64-byte ping-pong: pure round-trip latency"},
      {"2x64", 2, 64, 0, 0, false, 0, 0, "two connections: the iterative server's lunch problem"},
      {"10x64", 10, 64, 0, 0, false, 0, 0, "10 connections x 64 B: a few ready descriptors per wait"},
      {"50x64", 50, 64, 0, 0, false, 0, 0, "50 connections x 64 B: the mechanism's cost per event"},
      {"100x64", 100, 64, 0, 0, false, 0, 0, "100 connections x 64 B: the sweep between 50 and 500"},
      {"500x64", 500, 64, 0, 0, false, 0, 0, "500 connections x 64 B: many ready descriptors per wait"},
      {"1000x64", 1000, 64, 0, 0, false, 0, 0, "1,000 connections x 64 B: just below select's FD_SETSIZE (1,024)"},
      {"2000x64", 2000, 64, 0, 0, false, 0, 0, "2,000 connections x 64 B: twice select's FD_SETSIZE"},
      {"5000x64", 5000, 64, 0, 0, false, 0, 0, "5,000 connections x 64 B: beyond select's FD_SETSIZE"},
      {"50x64p16", 50, 64, 0, 0, false, 0, 0,
       "50 connections x 64 B, 16 messages in flight on each (redis-benchmark -P 16): pipelined", 16},
      {"50x16k", 50, 16384, 0, 0, false, 0, 0, "50 connections x 16 KiB: copying and partial reads/writes"},
      {"50+500idle", 50, 64, 500, 0, false, 0, 0, "50 active beside 500 idle: the idle crowd's cost as it grows"},
      {"50+1000idle", 50, 64, 1000, 0, false, 0, 0, "50 active beside 1,000 idle"},
      {"50+2000idle", 50, 64, 2000, 0, false, 0, 0, "50 active beside 2,000 idle"},
      {"50+5000idle", 50, 64, 5000, 0, false, 0, 0, "50 active beside 5,000 idle: what an idle crowd costs"},
      {"paced", 50, 64, 0, 50000, false, 0, 0, "50 connections at a fixed 50,000 round trips/s: server CPU per round trip"},
      {"memory", 10000, 64, 0, 0, true, 0, 0, "10,000 idle connections held: server RSS growth per connection"},
      {"instructions", 50, 64, 0, 0, false, 2000, 0,
       "50 connections x 64 B, 2,000 then 4,000 round trips under callgrind: server instructions per round trip"},
      {"scale-w1", 500, 64, 0, 0, false, 0, 1,
       "500 x 64 B, --workers 1 on 1 CPU, generators on the others: the base of scaling"},
      {"scale-w2", 500, 64, 0, 0, false, 0, 2, "as scale-w1 with --workers 2 on 2 CPUs (needs 4 CPUs)"},
      {"scale-w4", 500, 64, 0, 0, false, 0, 4, "as scale-w1 with --workers 4 on 4 CPUs (needs 8 CPUs)"},
      {"scale-w8", 500, 64, 0, 0, false, 0, 8, "as scale-w1 with --workers 8 on 8 CPUs (needs 16 CPUs)"},
      {"paced-w1", 50, 64, 0, 20000, false, 0, 1,
       "50 connections at 20,000 round trips/s, --workers 1, server and generator sharing every CPU"},
      {"paced-w2", 50, 64, 0, 20000, false, 0, 2,
       "as paced-w1 with --workers 2: server CPU per round trip against one worker"},
      {"spread-w2", 1000, 64, 0, 0, true, 0, 2, "1,000 idle connections to --workers 2: connections per worker"},
      {"spread-w4", 1000, 64, 0, 0, true, 0, 4, "as spread-w2 with --workers 4"},
      {"spread-w8", 1000, 64, 0, 0, true, 0, 8, "as spread-w2 with --workers 8"},
  };
  return all;
}

const scenario* find_scenario(std::string_view name) {
  for (const scenario& s : scenario_catalogue()) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

std::vector<std::string> scenario_group(std::string_view name) {
  if (name == "sweep") return connection_sweep;
  if (name == "idle-sweep") return idle_sweep;
  std::vector<std::string> out;
  for (const scenario& s : scenario_catalogue()) {
    if (s.workers == 0) continue;
    if (name == "workers" || s.name.rfind(std::string(name) + "-w", 0) == 0) out.push_back(s.name);
  }
  return out;
}

std::string one_worker_counterpart(const scenario& s) {
  const auto dash = s.name.rfind("-w");
  if (s.workers <= 1 || dash == std::string::npos) return {};
  return s.name.substr(0, dash) + "-w1";
}

std::optional<placement> place(const scenario& s, const std::vector<int>& allowed) {
  placement p;
  const std::size_t n = s.workers;
  const bool scaling = n > 0 && s.rate == 0 && !s.hold;
  const bool pinned = n == 0 ? allowed.size() >= 2 : s.rate == 0 && allowed.size() >= 2 * n;
  if (scaling && !pinned) return std::nullopt;
  if (!pinned) return p;  // everything shares every CPU: one generator
  const std::size_t server = std::max<std::size_t>(n, 1);
  p.server.assign(allowed.begin(), allowed.begin() + static_cast<long>(server));
  // A single server keeps the old cap: more generators only crowd the machine.
  const std::size_t spare = allowed.size() - server;
  const std::size_t generators = n == 0 ? std::min<std::size_t>(spare, 4) : spare;
  p.generators.assign(allowed.begin() + static_cast<long>(server),
                      allowed.begin() + static_cast<long>(server + generators));
  p.generator_count = std::max<std::size_t>(1, std::min<std::size_t>(generators, s.connections));
  return p;
}

std::vector<server_spec> servers_for(const std::vector<std::string>& backends, bool with_baselines,
                                     bool traced) {
  std::vector<server_spec> out;
  for (const std::string& b : backends) {
    out.push_back({"switchboard-" + b, b, b, false, false, false});
    if (traced) out.push_back({"switchboard-" + b + "+trace", b, b, false, false, true});
  }
  if (!with_baselines) return out;
  for (const std::string& b : backends) out.push_back({"echo-" + b, "", b, false, false});
  for (const char* other : {"echo-asio", "echo-threads"}) out.push_back({other, "", "", false, false});
  out.push_back({"echo-fork", "", "", false, true});
  out.push_back({"echo-iterative", "", "", true, false});
  return out;
}

bool runs_in(const server_spec& server, const scenario& s) {
  if (s.workers > 0) return !server.backend.empty();  // only switchboard has --workers
  if (server.forks && s.counted_round_trips > 0) return false;
  return !server.iterative || (!s.hold && s.idle == 0 && s.connections <= 2);
}

void add_options(CLI::App& cmd, raw_options& raw) {
  cmd.add_option("--backends", raw.backends, "switchboard backends to measure, comma-separated")
      ->capture_default_str();
  std::string names;
  for (const scenario& s : scenario_catalogue()) names += (names.empty() ? "" : ",") + s.name;
  cmd.add_option("--scenarios", raw.scenarios,
                 "comma-separated, from " + names +
                     "; groups: sweep (1x64 to 5000x64), idle-sweep (50x64 and 50+Nidle), scale, spread (their -wN "
                     "scenarios), workers (every -wN) (default: all)");
  cmd.add_option("--seconds", raw.seconds, "measured seconds per run (default 3, quick 1)")
      ->check(CLI::Range(0.2, 600.0));
  cmd.add_option("--pairs", raw.pairs, "alternating rounds over all servers; medians over them (default 3, quick 1)")
      ->check(CLI::Range(1, 99));
  cmd.add_flag("--with-baselines", raw.with_baselines,
               "also the hand-written loops, Asio, thread- and process-per-connection and iterative");
  cmd.add_flag("--traced", raw.traced,
               "also each backend's server with --trace on (switchboard-BACKEND+trace, writing to a scratch "
               "file with no event limit a run reaches): what tracing costs");
  cmd.add_option("--plot", raw.plot,
                 "write an SVG picture: ratios to the loops with their spread, paced CPU and p99, the connection "
                 "sweep");
  cmd.add_flag("--quick", raw.quick, "a short version (" + fmt::format("{}", fmt::join(quick_scenarios, ",")) +
                                         ", 1 s, 1 pair) for ./dev run");
}

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    if (comma > start) out.emplace_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

resolved resolve(const raw_options& raw) {
  resolved r;
  options& o = r.opts;
  o.quick = raw.quick;
  o.with_baselines = raw.with_baselines;
  o.traced = raw.traced;
  o.plot = raw.plot;
  o.seconds = raw.seconds.value_or(raw.quick ? 1.0 : 3.0);
  o.pairs = raw.pairs.value_or(raw.quick ? 1 : 3);
  o.backends.clear();
  for (std::string& b : split_list(raw.backends)) {
    if (b == "io_uring") b = "uring";
    if (!known_backend(b)) {
      r.error = "unknown backend '" + b + "' (select, epoll, uring)";
      return r;
    }
    if (std::find(o.backends.begin(), o.backends.end(), b) == o.backends.end()) o.backends.push_back(b);
  }
  if (o.backends.empty()) {
    r.error = "--backends names no backend";
    return r;
  }
  if (raw.scenarios.empty()) {
    if (raw.quick) {
      o.scenarios = quick_scenarios;
    } else {
      for (const scenario& s : scenario_catalogue()) o.scenarios.push_back(s.name);
    }
    return r;
  }
  for (const std::string& given : split_list(raw.scenarios)) {
    std::vector<std::string> names = scenario_group(given);
    if (find_scenario(given)) names = {given};
    if (names.empty()) {
      r.error = "unknown scenario '" + given + "'";
      return r;
    }
    for (const std::string& name : names) {
      if (std::find(o.scenarios.begin(), o.scenarios.end(), name) == o.scenarios.end()) {
        o.scenarios.push_back(name);
      }
    }
  }
  if (o.scenarios.empty()) r.error = "--scenarios names no scenario";
  return r;
}

std::map<std::string, std::string> parse_key_values(std::string_view line) {
  std::map<std::string, std::string> out;
  for (const std::string& w : words(line)) {
    const auto eq = w.find('=');
    if (eq != std::string::npos && eq > 0) out[w.substr(0, eq)] = w.substr(eq + 1);
  }
  return out;
}

std::optional<load_figures> parse_loadgen_output(std::string_view out) {
  std::optional<load_figures> found;
  std::istringstream lines{std::string(out)};
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("rps=", 0) != 0) continue;
    auto kv = parse_key_values(line);
    try {
      load_figures f;
      f.rps = std::stod(kv.at("rps"));
      f.p50_us = std::stod(kv.at("p50_us"));
      f.p99_us = std::stod(kv.at("p99_us"));
      f.round_trips = std::stoull(kv.at("round_trips"));
      f.errors = std::stoull(kv.at("errors"));
      f.connections = std::stoull(kv.at("connections")) + std::stoull(kv.at("idle"));
      found = f;
    } catch (const std::exception&) {  // a key missing or not a number
      return std::nullopt;
    }
  }
  return found;
}

load_figures combine(const std::vector<load_figures>& parts) {
  load_figures sum;
  for (const load_figures& p : parts) {
    sum.rps += p.rps;
    sum.p50_us = std::max(sum.p50_us, p.p50_us);
    sum.p99_us = std::max(sum.p99_us, p.p99_us);
    sum.round_trips += p.round_trips;
    sum.errors += p.errors;
    sum.connections += p.connections;
  }
  return sum;
}

std::optional<long> parse_ppid(std::string_view stat) {
  const auto paren = stat.rfind(')');
  if (paren == std::string_view::npos) return std::nullopt;
  const auto fields = words(stat.substr(paren + 1));
  if (fields.size() < 2) return std::nullopt;
  const auto v = to_count(fields[1]);
  if (!v) return std::nullopt;
  return static_cast<long>(*v);
}

std::vector<std::uint64_t> worker_open_counts(std::string_view err) {
  std::map<std::uint64_t, std::uint64_t> by_worker;
  std::istringstream lines{std::string(err)};
  for (std::string line; std::getline(lines, line);) {
    const auto w = words(line);
    // "echo: worker 2 (pid 4243): stats: open 3 total 120 ..."
    for (std::size_t i = 0; i + 6 < w.size(); ++i) {
      if (w[i] != "worker" || w[i + 2] != "(pid" || w[i + 4] != "stats:" || w[i + 5] != "open") continue;
      const auto index = to_count(w[i + 1]);
      const auto open = to_count(w[i + 6]);
      if (index && open) by_worker[*index] = *open;
      break;
    }
  }
  std::vector<std::uint64_t> out;
  for (const auto& [index, open] : by_worker) out.push_back(open);
  return out;
}

std::optional<double> spread_ratio(const std::vector<std::uint64_t>& counts) {
  if (counts.empty()) return std::nullopt;
  const auto [lo, hi] = std::minmax_element(counts.begin(), counts.end());
  if (*lo == 0) return std::numeric_limits<double>::infinity();
  return static_cast<double>(*hi) / static_cast<double>(*lo);
}

std::optional<std::uint64_t> parse_cpu_ticks(std::string_view stat) {
  // The command name may hold spaces and parentheses: fields follow the last ')'.
  const auto paren = stat.rfind(')');
  if (paren == std::string_view::npos) return std::nullopt;
  const auto fields = words(stat.substr(paren + 1));
  // fields[0] is field 3 (state); utime..cstime are fields 14..17.
  if (fields.size() < 15) return std::nullopt;
  std::uint64_t total = 0;
  for (std::size_t i = 11; i <= 14; ++i) {
    auto v = to_count(fields[i]);
    if (!v) return std::nullopt;
    total += *v;
  }
  return total;
}

std::optional<std::uint64_t> parse_busy_jiffies(std::string_view proc_stat) {
  std::istringstream lines{std::string(proc_stat)};
  for (std::string line; std::getline(lines, line);) {
    const auto w = words(line);
    if (w.empty() || w[0] != "cpu") continue;  // "cpu0", "cpu1", ... are the single CPUs
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    if (w.size() < 9) return std::nullopt;
    std::uint64_t busy = 0;
    for (std::size_t i = 1; i <= 8; ++i) {
      const auto v = to_count(w[i]);
      if (!v) return std::nullopt;
      if (i != 4 && i != 5) busy += *v;
    }
    return busy;
  }
  return std::nullopt;
}

std::optional<double> other_cpu_percent(std::uint64_t busy_before, std::uint64_t busy_after, long jiffies_per_s,
                                        double ours_s, double wall_s) {
  if (busy_after < busy_before || jiffies_per_s <= 0 || wall_s <= 0) return std::nullopt;
  const double busy_s = static_cast<double>(busy_after - busy_before) / static_cast<double>(jiffies_per_s);
  return std::max(0.0, busy_s - ours_s) / wall_s * 100;
}

std::optional<std::uint64_t> parse_perf_count(std::string_view out) {
  std::istringstream lines{std::string(out)};
  for (std::string line; std::getline(lines, line);) {
    if (line.find("raw_syscalls:sys_enter") == std::string::npos) continue;
    return to_count(line.substr(0, line.find(',')));
  }
  return std::nullopt;
}

std::optional<std::uint64_t> parse_strace_total(std::string_view out) {
  std::istringstream lines{std::string(out)};
  for (std::string line; std::getline(lines, line);) {
    const auto w = words(line);
    // "100.00  0.001234  3  412  [errors]  total"
    if (w.size() >= 5 && w.back() == "total") return to_count(w[3]);
  }
  return std::nullopt;
}

std::optional<std::uint64_t> parse_callgrind_total(std::string_view file) {
  std::istringstream lines{std::string(file)};
  for (std::string line; std::getline(lines, line);) {
    const auto w = words(line);
    // "totals: 123456": Ir comes first, other events (cache simulation) after it.
    if (w.size() >= 2 && (w[0] == "totals:" || w[0] == "summary:")) return to_count(w[1]);
  }
  return std::nullopt;
}

std::optional<double> instructions_per_rt(std::uint64_t over_n, std::uint64_t over_2n, std::uint32_t n) {
  if (n == 0 || over_2n <= over_n) return std::nullopt;
  return static_cast<double>(over_2n - over_n) / n;
}

std::optional<double> median(std::vector<double> values) {
  std::erase_if(values, [](double v) { return !std::isfinite(v); });
  if (values.empty()) return std::nullopt;
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

namespace {

// a[i] / b[i] for each pair i where both runs gave a figure.
std::vector<double> per_pair_ratios(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> ratios;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    if (std::isfinite(a[i]) && std::isfinite(b[i]) && b[i] > 0) ratios.push_back(a[i] / b[i]);
  }
  return ratios;
}

void set_ratio(row& r, const std::vector<double>& a, const std::vector<double>& b) {
  const std::vector<double> ratios = per_pair_ratios(a, b);
  r.ratio = median(ratios);
  if (ratios.empty()) return;
  const auto [lo, hi] = std::minmax_element(ratios.begin(), ratios.end());
  r.ratio_min = *lo;
  r.ratio_max = *hi;
}

}  // namespace

std::optional<double> paired_ratio(const std::vector<double>& a, const std::vector<double>& b) {
  return median(per_pair_ratios(a, b));
}

std::vector<row> summarize(const std::vector<cell>& cells, const std::vector<server_spec>& servers) {
  auto find_cell = [&](std::string_view server, std::string_view scen) -> const cell* {
    for (const cell& c : cells) {
      if (c.server == server && c.scenario == scen) return &c;
    }
    return nullptr;
  };
  std::vector<row> rows;
  for (const cell& c : cells) {
    row r{c.server, c.scenario, median(c.rps), median(c.p50_us), median(c.p99_us),
          median(c.cpu_us_per_rt), c.syscalls_per_rt, median(c.bytes_per_conn),
          median(c.instructions_per_rt), std::nullopt, std::nullopt, std::nullopt, c.errors, c.note,
          median(c.generator_cpu), spread_median(c.spread), c.per_worker};
    r.other_cpu = median(c.other_cpu);
    const scenario* s = find_scenario(c.scenario);
    if (s && s->workers > 0) {
      if (const cell* one = find_cell(c.server, one_worker_counterpart(*s))) {
        if (s->rate > 0) {
          set_ratio(r, c.cpu_us_per_rt, one->cpu_us_per_rt);
        } else {
          set_ratio(r, c.rps, one->rps);
        }
      }
      rows.push_back(std::move(r));
      continue;
    }
    for (const server_spec& spec : servers) {
      if (spec.name != c.server || spec.backend.empty()) continue;
      const cell* loop = find_cell("echo-" + spec.mechanism, c.scenario);
      // Memory has an absolute target; a loop with static tables makes a ratio meaningless.
      if (!loop || !s || s->hold) continue;
      if (s->counted_round_trips > 0) {
        set_ratio(r, c.instructions_per_rt, loop->instructions_per_rt);
      } else if (s->rate > 0) {
        set_ratio(r, c.cpu_us_per_rt, loop->cpu_us_per_rt);
      } else {
        set_ratio(r, c.rps, loop->rps);
      }
      if (s->counted_round_trips == 0) r.p99_ratio = paired_ratio(c.p99_us, loop->p99_us);
    }
    rows.push_back(std::move(r));
  }
  return rows;
}

std::string format_table(const std::vector<row>& rows) {
  const std::vector<std::string> head{"server", "scenario", "rps", "p50 us", "p99 us", "CPU us/RT",
                                      "syscalls/RT", "B/conn", "instr/RT", "gen CPU %", "other %", "max/min",
                                      "ratio", "errors"};
  std::vector<std::vector<std::string>> cells{head};
  for (const row& r : rows) {
    const scenario* s = find_scenario(r.scenario);
    std::vector<std::string> line{r.server, r.scenario};
    // Each kind of scenario fills its own columns.
    if (s && s->hold && s->workers > 0) {
      std::string spread = r.spread && std::isinf(*r.spread) ? "inf" : show(r.spread, 2);
      if (!r.per_worker.empty()) spread += " (" + r.per_worker + ")";
      line.insert(line.end(), {"-", "-", "-", "-", "-", "-", "-", "-", "-", spread});
    } else if (s && s->hold) {
      line.insert(line.end(), {"-", "-", "-", "-", "-", show(r.bytes_per_conn, 0), "-", "-", "-", "-"});
    } else if (s && s->counted_round_trips > 0) {
      line.insert(line.end(), {"-", "-", "-", "-", "-", "-", show(r.instructions_per_rt, 0), "-", "-", "-"});
    } else {
      const std::optional<double> gen_percent =
          r.generator_cpu ? std::optional(*r.generator_cpu * 100) : std::nullopt;
      line.insert(line.end(), {show(r.rps, 0), show(r.p50_us, 1), show(r.p99_us, 1),
                               show(r.cpu_us_per_rt, 2), s && s->workers > 0 ? "-" : show(r.syscalls_per_rt, 2),
                               "-", "-", show(gen_percent, 0), show(r.other_cpu, 0), "-"});
    }
    line.push_back(r.ratio ? fmt::format("{:.2f}", *r.ratio) : "-");
    line.push_back(std::to_string(r.errors) + (r.note.empty() ? "" : " (" + r.note + ")"));
    cells.push_back(std::move(line));
  }
  std::vector<std::size_t> width(head.size(), 0);
  for (const auto& line : cells) {
    for (std::size_t i = 0; i < line.size(); ++i) width[i] = std::max(width[i], line[i].size());
  }
  std::string out;
  for (const auto& line : cells) {
    std::string text;
    for (std::size_t i = 0; i < line.size(); ++i) {
      // Names left-aligned, figures right-aligned, the last column unpadded.
      if (i + 1 == line.size()) {
        text += line[i];
      } else if (i < 2) {
        text += fmt::format("{:<{}}  ", line[i], width[i]);
      } else {
        text += fmt::format("{:>{}}  ", line[i], width[i]);
      }
    }
    out += text + "\n";
  }
  return out;
}

std::optional<std::string> busy_machine_line(const std::vector<cell>& cells) {
  std::vector<std::string> busy;
  for (const cell& c : cells) {
    std::size_t runs = 0;
    double worst = 0;
    for (double percent : c.other_cpu) {
      if (percent <= busy_machine_percent || std::isnan(percent)) continue;
      ++runs;
      worst = std::max(worst, percent);
    }
    if (runs > 0) {
      busy.push_back(fmt::format("{} at {} ({} of {} runs, up to {:.0f}%)", c.server, c.scenario, runs,
                                 c.other_cpu.size(), worst));
    }
  }
  if (busy.empty()) return std::nullopt;
  return fmt::format("busy machine: other processes took more than {:.0f}% of one CPU during {}; figures may be "
                     "disturbed",
                     busy_machine_percent, fmt::join(busy, ", "));
}

std::vector<std::string> judge_targets(const std::vector<row>& rows, std::size_t cpus) {
  std::vector<std::string> out;
  for (const char* b : {"select", "epoll", "uring"}) {
    const std::string ours = std::string("switchboard-") + b;
    const std::string loop = std::string("echo-") + b;
    for (const char* scen : {"50x64", "500x64"}) {
      const row* r = find_row(rows, ours, scen);
      if (!r || !r->ratio) continue;
      out.push_back(verdict(*r->ratio >= 0.95) +
                    fmt::format("{} rps at {} is {:.2f}x {} (target >= 0.95x)", ours, scen, *r->ratio, loop));
    }
    const bool uring = std::string_view(b) == "uring";
    if (const row* r = find_row(rows, ours, "paced")) {
      // Three decimals: a limit of 1.03 is judged finer than two would show.
      const double cpu_limit = uring ? 1.05 : 1.03;
      if (r->ratio) {
        out.push_back(verdict(*r->ratio <= cpu_limit) +
                      fmt::format("{} CPU per round trip at the paced rate is {:.3f}x {} (target <= {:.2f}x)", ours,
                                  *r->ratio, loop, cpu_limit));
      }
      if (uring && r->p99_ratio) {
        out.push_back(verdict(*r->p99_ratio <= 1.5) +
                      fmt::format("{} p99 at the paced rate is {:.2f}x {} (target <= 1.5x)", ours, *r->p99_ratio,
                                  loop));
      }
    }
    if (const row* r = find_row(rows, ours, "instructions"); r && r->instructions_per_rt) {
      const double limit = uring ? 450 : 350;
      out.push_back(verdict(*r->instructions_per_rt <= limit) +
                    fmt::format("{} runs {:.0f} user-space instructions per round trip (target <= {:.0f})", ours,
                                *r->instructions_per_rt, limit));
    }
  }
  if (const row* asio = find_row(rows, "echo-asio", "500x64"); asio && asio->rps && *asio->rps > 0) {
    const row* best = nullptr;
    for (const row& r : rows) {
      if (r.scenario == "500x64" && r.server.rfind("switchboard-", 0) == 0 && r.rps &&
          (!best || *r.rps > *best->rps)) {
        best = &r;
      }
    }
    if (best) {
      const double ratio = *best->rps / *asio->rps;
      out.push_back(verdict(ratio >= 1.3) +
                    fmt::format("best backend {} at 500x64 is {:.2f}x echo-asio in rps (target >= 1.3x)",
                                best->server, ratio));
    }
  }
  for (const row& ours : rows) {
    if (ours.server != "switchboard-epoll") continue;
    const row* asio = find_row(rows, "echo-asio", ours.scenario);
    const scenario* s = find_scenario(ours.scenario);
    if (!asio || !s) continue;
    // Ahead: more rps, or less CPU per round trip when paced, or less memory.
    std::optional<double> a = ours.rps, b = asio->rps;
    std::string what = "rps";
    bool higher_is_better = true;
    if (s->rate > 0) {
      a = ours.cpu_us_per_rt, b = asio->cpu_us_per_rt, what = "CPU us/RT", higher_is_better = false;
    } else if (s->hold) {
      a = ours.bytes_per_conn, b = asio->bytes_per_conn, what = "B/conn", higher_is_better = false;
    }
    if (!a || !b) continue;
    const bool ahead = higher_is_better ? *a > *b : *a < *b;
    out.push_back(verdict(ahead) + fmt::format("switchboard-epoll ahead of echo-asio at {}: {} {:.2f} vs {:.2f}",
                                               ours.scenario, what, *a, *b));
  }
  for (const row& r : rows) {
    const scenario* s = find_scenario(r.scenario);
    if (r.server != "switchboard-uring" || !s || s->hold || s->connections < 50 || !r.syscalls_per_rt) continue;
    out.push_back(verdict(*r.syscalls_per_rt <= 0.2) +
                  fmt::format("switchboard-uring makes {:.2f} syscalls per round trip at {} (target <= 0.2)",
                              *r.syscalls_per_rt, r.scenario));
  }
  for (const char* server : {"switchboard-epoll", "switchboard-uring"}) {
    const row* r = find_row(rows, server, "memory");
    if (!r || !r->bytes_per_conn) continue;
    out.push_back(verdict(*r->bytes_per_conn <= 2048) +
                  fmt::format("{} holds {:.0f} B per idle connection at 10,000 (target <= 2048)", server,
                              *r->bytes_per_conn));
  }
  judge_worker_targets(rows, cpus, out);
  return out;
}

}  // namespace switchboard::tools::bench
