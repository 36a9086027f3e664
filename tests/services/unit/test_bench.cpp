// The benchmark driver's pure logic: options, the figures it reads from the
// load generator and the counters, medians and ratios, targets, table
// (the picture: test_bench_plot.cpp).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "bench/bench_core.hpp"

using namespace switchboard::tools::bench;

namespace {
constexpr double no_figure = std::numeric_limits<double>::quiet_NaN();

resolved parse(std::vector<std::string> args) {
  CLI::App app;
  raw_options raw;
  add_options(app, raw);
  std::reverse(args.begin(), args.end());  // CLI11 takes them last first
  app.parse(args);
  return resolve(raw);
}

std::size_t count(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}
}  // namespace

TEST_CASE("bench options: defaults, --quick, lists and their errors", "[bench]") {
  auto plain = parse({});
  REQUIRE(plain.ok());
  CHECK(plain.opts.backends == std::vector<std::string>{"select", "epoll", "uring"});
  CHECK(plain.opts.scenarios.size() == scenario_catalogue().size());
  CHECK(plain.opts.seconds == 3);
  CHECK(plain.opts.pairs == 3);

  auto quick = parse({"--quick"});
  REQUIRE(quick.ok());
  CHECK(quick.opts.seconds == 1);
  CHECK(quick.opts.pairs == 1);
  CHECK(quick.opts.scenarios.size() < plain.opts.scenarios.size());

  auto chosen = parse({"--quick", "--seconds", "2", "--pairs", "5", "--backends", "io_uring,epoll,epoll",
                       "--scenarios", "50x64,,memory", "--with-baselines", "--plot", "x.svg"});
  REQUIRE(chosen.ok());
  CHECK(chosen.opts.seconds == 2);
  CHECK(chosen.opts.pairs == 5);
  CHECK(chosen.opts.backends == std::vector<std::string>{"uring", "epoll"});
  CHECK(chosen.opts.scenarios == std::vector<std::string>{"50x64", "memory"});
  CHECK(parse({"--scenarios", "instructions"}).opts.scenarios == std::vector<std::string>{"instructions"});
  CHECK(chosen.opts.with_baselines);
  CHECK(chosen.opts.plot == "x.svg");
  CHECK_FALSE(chosen.opts.traced);
  CHECK(parse({"--traced"}).opts.traced);

  CHECK(parse({"--backends", "kqueue"}).error.find("kqueue") != std::string::npos);
  CHECK(parse({"--backends", ","}).error.find("no backend") != std::string::npos);
  CHECK(parse({"--scenarios", "7x64"}).error.find("7x64") != std::string::npos);
  CHECK_THROWS_AS(parse({"--pairs", "0"}), CLI::ValidationError);
}

TEST_CASE("bench servers: switchboard per backend, then the baselines; iterative only where it answers", "[bench]") {
  auto alone = servers_for({"epoll"}, false);
  REQUIRE(alone.size() == 1);
  CHECK(alone[0].name == "switchboard-epoll");
  CHECK(alone[0].backend == "epoll");

  auto all = servers_for({"select", "uring"}, true);
  std::vector<std::string> names;
  for (const auto& s : all) names.push_back(s.name);
  CHECK(names == std::vector<std::string>{"switchboard-select", "switchboard-uring", "echo-select", "echo-uring",
                                          "echo-asio", "echo-threads", "echo-fork", "echo-iterative"});
  const auto& iterative = all.back();
  CHECK(runs_in(iterative, *find_scenario("1x64")));
  CHECK(runs_in(iterative, *find_scenario("2x64")));
  CHECK_FALSE(runs_in(iterative, *find_scenario("50x64")));
  CHECK_FALSE(runs_in(iterative, *find_scenario("memory")));
  CHECK(runs_in(all[0], *find_scenario("memory")));
  const auto& fork = all[all.size() - 2];
  REQUIRE(fork.name == "echo-fork");
  CHECK(runs_in(fork, *find_scenario("50x64")));
  CHECK_FALSE(runs_in(fork, *find_scenario("instructions")));
  CHECK(runs_in(all[0], *find_scenario("instructions")));
}

TEST_CASE("bench servers: --traced puts each backend's traced twin beside it", "[bench]") {
  auto traced = servers_for({"select", "epoll"}, false, true);
  REQUIRE(traced.size() == 4);
  CHECK(traced[1].name == "switchboard-select+trace");
  CHECK(traced[1].backend == "select");
  CHECK(traced[1].traced);
  CHECK_FALSE(traced[0].traced);
  CHECK(traced[3].name == "switchboard-epoll+trace");
  CHECK(runs_in(traced[3], *find_scenario("instructions")));
}

TEST_CASE("bench reads the load generator's line and adds up several generators", "[bench]") {
  const std::string out =
      "noise\nrps=170982.0 mbps=21.9 p50_us=269.3 p90_us=431.1 p99_us=526.3 p999_us=1249.3 max_us=2686.1 "
      "mean_us=292.2 round_trips=341964 errors=2 connect_errors=0 io_errors=2 verify_errors=0 connections=50 "
      "idle=7 size=64 pipeline=1 rate=0.0 seconds=2.00\n";
  auto f = parse_loadgen_output(out);
  REQUIRE(f);
  CHECK(f->rps == Approx(170982.0));
  CHECK(f->p50_us == Approx(269.3));
  CHECK(f->p99_us == Approx(526.3));
  CHECK(f->round_trips == 341964);
  CHECK(f->errors == 2);
  CHECK(f->connections == 57);

  CHECK_FALSE(parse_loadgen_output("ready connections=10\n"));
  CHECK_FALSE(parse_loadgen_output("rps=1.0 p50_us=2\n"));           // keys missing
  CHECK_FALSE(parse_loadgen_output(out.substr(0, out.find("p50_us")) + "p50_us=x p99_us=1 round_trips=1 errors=0 "
                                                                      "connections=1 idle=0\n"));

  load_figures a{100, 10, 50, 200, 0, 25};
  load_figures b{150, 12, 40, 300, 1, 25};
  auto sum = combine({a, b});
  CHECK(sum.rps == 250);
  CHECK(sum.p50_us == 12);
  CHECK(sum.p99_us == 50);
  CHECK(sum.round_trips == 500);
  CHECK(sum.errors == 1);
  CHECK(sum.connections == 50);

  auto kv = parse_key_values("a=1  b=x=y =z c");
  CHECK(kv.size() == 2);
  CHECK(kv["b"] == "x=y");
}

TEST_CASE("bench reads CPU ticks, perf and strace counts", "[bench]") {
  // A command name with a space and a parenthesis; utime..cstime = 11 22 33 44.
  const std::string stat = "4242 (echo (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 11 22 33 44 20 0 1 0 5 6 7";
  CHECK(parse_cpu_ticks(stat) == std::optional<std::uint64_t>(110));
  CHECK_FALSE(parse_cpu_ticks("4242 (short) S 1 2"));
  CHECK_FALSE(parse_cpu_ticks("no parenthesis"));

  CHECK(parse_perf_count("123456,,raw_syscalls:sys_enter,2003456789,100.00,,\n") ==
        std::optional<std::uint64_t>(123456));
  CHECK_FALSE(parse_perf_count("<not counted>,,raw_syscalls:sys_enter,0,0.00,,\n"));
  CHECK_FALSE(parse_perf_count("nothing here\n"));

  const std::string strace =
      "% time     seconds  usecs/call     calls    errors syscall\n"
      "------ ----------- ----------- --------- --------- ----------------\n"
      " 60.00    0.000600           1       400           epoll_wait\n"
      " 40.00    0.000400           1       412        12 recvfrom\n"
      "------ ----------- ----------- --------- --------- ----------------\n"
      "100.00    0.001000           1       812        12 total\n";
  CHECK(parse_strace_total(strace) == std::optional<std::uint64_t>(812));
  CHECK(parse_strace_total("100.00    0.001000           1       7 total\n") == std::optional<std::uint64_t>(7));
  CHECK_FALSE(parse_strace_total("strace: attach: ptrace(PTRACE_SEIZE, 1): Operation not permitted\n"));
}

TEST_CASE("bench reads the machine's busy jiffies from /proc/stat and what other processes took", "[bench]") {
  // user nice system idle iowait irq softirq steal guest guest_nice: busy
  // is everything but idle and iowait, guest being inside user already.
  const std::string stat =
      "cpu  1000 20 300 50000 400 10 5 3 7 1\n"
      "cpu0 500 10 150 25000 200 5 2 1 7 1\n"
      "cpu1 500 10 150 25000 200 5 3 2 0 0\n"
      "intr 123456 0 0\n"
      "ctxt 987654\n";
  CHECK(parse_busy_jiffies(stat) == std::optional<std::uint64_t>(1338));
  CHECK_FALSE(parse_busy_jiffies("cpu0 500 10 150 25000 200 5 2 1 0 0\n"));  // no aggregate line
  CHECK_FALSE(parse_busy_jiffies("cpu  1000 20 300 50000\n"));                // too few fields
  CHECK_FALSE(parse_busy_jiffies("cpu  1000 x 300 50000 400 10 5 3 0 0\n"));
  CHECK_FALSE(parse_busy_jiffies(""));

  // 2 s of wall time, 250 busy jiffies at 100/s = 2.5 CPU-seconds, of which
  // server, generators and driver took 2.3: others took 0.2 s, 10% of a CPU.
  CHECK(other_cpu_percent(1000, 1250, 100, 2.3, 2.0) == Approx(10));
  CHECK(other_cpu_percent(1000, 1250, 100, 2.6, 2.0) == std::optional<double>(0));  // ticks apart: not below 0
  CHECK(other_cpu_percent(0, 400, 100, 0, 2.0) == Approx(200));  // two CPUs busy elsewhere
  CHECK_FALSE(other_cpu_percent(1250, 1000, 100, 0, 2.0));
  CHECK_FALSE(other_cpu_percent(1000, 1250, 100, 0, 0));
}

TEST_CASE("bench names each cell where other processes took more than 10% of a CPU", "[bench]") {
  std::vector<cell> cells(3);
  cells[0].server = "switchboard-epoll";
  cells[0].scenario = "50x64";
  cells[0].other_cpu = {2, 35.4, 12};
  cells[1].server = "echo-epoll";
  cells[1].scenario = "50x64";
  cells[1].other_cpu = {10, no_figure, 3};  // 10 is not above the threshold
  cells[2].server = "echo-epoll";
  cells[2].scenario = "memory";  // no traffic: no figure
  CHECK_FALSE(busy_machine_line({cells[1], cells[2]}));
  const auto line = busy_machine_line(cells);
  REQUIRE(line);
  CHECK(*line == "busy machine: other processes took more than 10% of one CPU during switchboard-epoll at 50x64 "
                 "(2 of 3 runs, up to 35%); figures may be disturbed");

  const auto rows = summarize(cells, servers_for({"epoll"}, true));
  CHECK(rows[0].other_cpu == Approx(12));
  CHECK(rows[1].other_cpu == Approx(6.5));
  const std::string table = format_table(rows);
  CHECK(table.find("other %") != std::string::npos);
}

TEST_CASE("bench reads callgrind's instruction total and takes the N to 2N difference", "[bench]") {
  const std::string file =
      "# callgrind format\nversion: 1\ncreator: callgrind-3.19.0\npid: 6618\ncmd:  ./echo-uring --port 0\n"
      "part: 1\n\ndesc: Trigger: Program termination\n\npositions: line\nevents: Ir\nsummary: 198103\n\n"
      "ob=(1) /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\nfn=(1) 0x000000000001d100\n0 3\n\n"
      "totals: 198103\n";
  CHECK(parse_callgrind_total(file) == std::optional<std::uint64_t>(198103));
  CHECK(parse_callgrind_total("events: Ir Dr\ntotals: 500 200\n") == std::optional<std::uint64_t>(500));
  CHECK_FALSE(parse_callgrind_total("events: Ir\n"));  // cut off before the totals
  CHECK_FALSE(parse_callgrind_total("summary: many\n"));
  CHECK_FALSE(parse_callgrind_total(""));

  // 2,000 more round trips cost 9,000,000 more instructions.
  CHECK(instructions_per_rt(1'000'000 + 9'000'000, 1'000'000 + 18'000'000, 2000) == std::optional<double>(4500));
  CHECK_FALSE(instructions_per_rt(5000, 5000, 2000));  // the longer run cannot cost nothing more
  CHECK_FALSE(instructions_per_rt(6000, 5000, 2000));
  CHECK_FALSE(instructions_per_rt(1000, 5000, 0));
}

TEST_CASE("bench medians and paired ratios skip runs without a figure", "[bench]") {
  CHECK(median({3, 1, 2}) == std::optional<double>(2));
  CHECK(median({4, 1, 3, 2}) == std::optional<double>(2.5));
  CHECK(median({no_figure, 5, no_figure}) == std::optional<double>(5));
  CHECK_FALSE(median({}));
  CHECK_FALSE(median({no_figure}));

  // Per pair 0.5, 2 (pair 2 dropped: no baseline figure), 1.
  CHECK(paired_ratio({1, 4, 7, 3}, {2, 2, no_figure, 3}) == std::optional<double>(1));
  CHECK_FALSE(paired_ratio({1}, {0}));
}

namespace {
std::vector<cell> sample_cells() {
  auto make = [](std::string server, std::string scen) {
    cell c;
    c.server = std::move(server);
    c.scenario = std::move(scen);
    c.rps = c.p50_us = c.p99_us = c.cpu_us_per_rt = c.bytes_per_conn = {no_figure, no_figure, no_figure};
    return c;
  };
  std::vector<cell> cells;
  cells.push_back(make("switchboard-epoll", "500x64"));
  cells.back().rps = {90, 100, 95};
  cells.back().syscalls_per_rt = 2.1;
  cells.push_back(make("echo-epoll", "500x64"));
  cells.back().rps = {100, 100, 100};
  cells.push_back(make("echo-asio", "500x64"));
  cells.back().rps = {80, 80, 80};
  cells.push_back(make("switchboard-epoll", "paced"));
  cells.back().rps = {50, 50, 50};
  cells.back().cpu_us_per_rt = {10, 10, 10};
  cells.push_back(make("echo-epoll", "paced"));
  cells.back().rps = {50, 50, 50};
  cells.back().cpu_us_per_rt = {9, 8, 10};
  cells.push_back(make("switchboard-uring", "500x64"));
  cells.back().rps = {120, 120, 120};
  cells.back().syscalls_per_rt = 0.5;
  cells.back().note = "a note";
  cells.push_back(make("switchboard-uring", "memory"));
  cells.back().bytes_per_conn = {1500, 1600, 1700};
  cells.push_back(make("switchboard-epoll", "instructions"));
  cells.back().instructions_per_rt = {5200, 5100, 5150};
  cells.push_back(make("echo-epoll", "instructions"));
  cells.back().instructions_per_rt = {4000, 4000, 4000};
  return cells;
}
}  // namespace

TEST_CASE("bench table: medians, ratios to the same mechanism's loop, n/a where nothing was measured", "[bench]") {
  const auto rows = summarize(sample_cells(), servers_for({"epoll", "uring"}, true));
  REQUIRE(rows.size() == 9);
  CHECK(rows[0].rps == std::optional<double>(95));
  CHECK(rows[0].ratio == Approx(0.95));
  CHECK(rows[0].ratio_min == Approx(0.9));  // the pairs' 0.9, 1 and 0.95
  CHECK(rows[0].ratio_max == Approx(1.0));
  CHECK_FALSE(rows[1].ratio);                  // the loop itself
  CHECK(rows[3].ratio == Approx(10.0 / 9.0));  // paced: CPU per round trip
  CHECK(rows[3].ratio_max == Approx(10.0 / 8.0));
  CHECK_FALSE(rows[5].ratio);                  // no echo-uring figures
  CHECK(rows[6].bytes_per_conn == std::optional<double>(1600));
  CHECK(rows[7].instructions_per_rt == std::optional<double>(5150));
  CHECK(rows[7].ratio == Approx(5150.0 / 4000.0));  // counted: instructions per round trip
  CHECK_FALSE(rows[7].rps);

  const std::string table = format_table(rows);
  CHECK(table.rfind("server", 0) == 0);
  CHECK(count(table, "\n") == 10);
  CHECK(table.find("n/a") != std::string::npos);  // echo-asio has no p50
  CHECK(table.find("(a note)") != std::string::npos);
  CHECK(table.find("1600") != std::string::npos);
  CHECK(table.find("instr/RT") != std::string::npos);
  CHECK(table.find("5150") != std::string::npos);
  CHECK(table.find("1.29") != std::string::npos);

  const auto lines = judge_targets(rows);
  auto has = [&](const std::string& needle) {
    return std::any_of(lines.begin(), lines.end(), [&](const std::string& l) { return l.find(needle) != std::string::npos; });
  };
  CHECK(has("target met: switchboard-epoll rps at 500x64 is 0.95x echo-epoll"));
  CHECK(has("target MISSED: switchboard-epoll CPU per round trip at the paced rate is 1.111x echo-epoll "
            "(target <= 1.03x)"));
  CHECK(has("target met: best backend switchboard-uring at 500x64 is 1.50x echo-asio"));
  CHECK(has("target met: switchboard-epoll ahead of echo-asio at 500x64"));
  CHECK(has("target MISSED: switchboard-uring makes 0.50 syscalls per round trip at 500x64"));
  CHECK(has("target met: switchboard-uring holds 1600 B per idle connection"));
  CHECK(has("target MISSED: switchboard-epoll runs 5150 user-space instructions per round trip (target <= 350)"));
  CHECK(lines.size() == 7);
}

namespace {
// switchboard on `backend` and its loop at the paced rate and in the
// instructions scenario, each figure the same in three pairs.
std::vector<row> paced_and_counted(const std::string& backend, double cpu_ratio, std::vector<double> p99,
                                   std::vector<double> loop_p99, double instructions) {
  auto make = [](std::string server, std::string scen) {
    cell c;
    c.server = std::move(server);
    c.scenario = std::move(scen);
    c.rps = c.p50_us = c.p99_us = c.cpu_us_per_rt = c.bytes_per_conn = c.instructions_per_rt = {no_figure, no_figure,
                                                                                                no_figure};
    return c;
  };
  std::vector<cell> cells;
  cells.push_back(make("switchboard-" + backend, "paced"));
  cells.back().cpu_us_per_rt = {10 * cpu_ratio, 10 * cpu_ratio, 10 * cpu_ratio};
  cells.back().p99_us = std::move(p99);
  cells.push_back(make("echo-" + backend, "paced"));
  cells.back().cpu_us_per_rt = {10, 10, 10};
  cells.back().p99_us = std::move(loop_p99);
  cells.push_back(make("switchboard-" + backend, "instructions"));
  cells.back().instructions_per_rt = {instructions, instructions, instructions};
  return summarize(cells, servers_for({backend}, true));
}

bool has_line(const std::vector<std::string>& lines, const std::string& needle) {
  return std::any_of(lines.begin(), lines.end(), [&](const std::string& l) { return l.find(needle) != std::string::npos; });
}
}  // namespace

TEST_CASE("bench judges issue 14's targets: paced CPU and p99 against the loop, instructions per round trip",
          "[bench]") {
  const std::vector<double> same{200, 200, 200};
  auto lines = judge_targets(paced_and_counted("select", 1.03, same, same, 350));
  CHECK(has_line(lines, "target met: switchboard-select CPU per round trip at the paced rate is 1.030x echo-select "
                        "(target <= 1.03x)"));
  CHECK(has_line(lines, "target met: switchboard-select runs 350 user-space instructions per round trip "
                        "(target <= 350)"));
  CHECK_FALSE(has_line(lines, "p99"));  // judged on io_uring only
  CHECK(lines.size() == 2);

  lines = judge_targets(paced_and_counted("epoll", 1.04, same, same, 351));
  CHECK(has_line(lines, "target MISSED: switchboard-epoll CPU per round trip at the paced rate is 1.040x echo-epoll "
                        "(target <= 1.03x)"));
  CHECK(has_line(lines, "target MISSED: switchboard-epoll runs 351 user-space instructions per round trip "
                        "(target <= 350)"));

  // io_uring: 1.05 for CPU, 450 instructions; p99 the median of the per-pair
  // ratios (1.4, 1.5, 2.0), not the ratio of the medians (300 / 200).
  lines = judge_targets(paced_and_counted("uring", 1.05, {280, 300, 300}, {200, 200, 150}, 450));
  CHECK(has_line(lines, "target met: switchboard-uring CPU per round trip at the paced rate is 1.050x echo-uring "
                        "(target <= 1.05x)"));
  CHECK(has_line(lines, "target met: switchboard-uring p99 at the paced rate is 1.50x echo-uring (target <= 1.5x)"));
  CHECK(has_line(lines, "target met: switchboard-uring runs 450 user-space instructions per round trip "
                        "(target <= 450)"));
  CHECK(lines.size() == 3);

  lines = judge_targets(paced_and_counted("uring", 1.06, {400, 300, 500}, {200, 200, 200}, 451));
  CHECK(has_line(lines, "target MISSED: switchboard-uring CPU per round trip at the paced rate is 1.060x echo-uring "
                        "(target <= 1.05x)"));
  CHECK(has_line(lines, "target MISSED: switchboard-uring p99 at the paced rate is 2.00x echo-uring (target <= 1.5x)"));
  CHECK(has_line(lines, "target MISSED: switchboard-uring runs 451 user-space instructions per round trip "
                        "(target <= 450)"));
}

TEST_CASE("bench worker scenarios: groups, switchboard only, the one-worker counterpart", "[bench]") {
  CHECK(parse({"--scenarios", "scale"}).opts.scenarios ==
        std::vector<std::string>{"scale-w1", "scale-w2", "scale-w4", "scale-w8"});
  CHECK(parse({"--scenarios", "spread,paced-w2,spread-w2"}).opts.scenarios ==
        std::vector<std::string>{"spread-w2", "spread-w4", "spread-w8", "paced-w2"});
  CHECK(parse({"--scenarios", "paced"}).opts.scenarios == std::vector<std::string>{"paced"});  // a name wins
  const auto workers = parse({"--scenarios", "workers"}).opts.scenarios;
  CHECK(workers.size() == 9);
  CHECK(parse({"--scenarios", "scale-w3"}).error.find("scale-w3") != std::string::npos);
  CHECK(scenario_group("50x64").empty());

  const scenario& w4 = *find_scenario("scale-w4");
  CHECK(w4.workers == 4);
  CHECK(w4.connections == 500);
  CHECK(w4.size == 64);
  CHECK(find_scenario("spread-w8")->connections == 1000);
  CHECK(find_scenario("spread-w8")->hold);
  CHECK(find_scenario("paced-w2")->rate == find_scenario("paced-w1")->rate);
  CHECK(one_worker_counterpart(w4) == "scale-w1");
  CHECK(one_worker_counterpart(*find_scenario("paced-w2")) == "paced-w1");
  CHECK(one_worker_counterpart(*find_scenario("scale-w1")).empty());
  CHECK(one_worker_counterpart(*find_scenario("500x64")).empty());

  const auto servers = servers_for({"epoll"}, true);
  for (const server_spec& s : servers) CHECK(runs_in(s, w4) == !s.backend.empty());
}

TEST_CASE("bench places the server's workers and the generators on CPUs of their own", "[bench]") {
  const std::vector<int> two{0, 1}, sixteen{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  const std::vector<int> one{3};

  // A single server: one CPU, generators on up to 4 others, as always.
  auto single = place(*find_scenario("500x64"), sixteen);
  REQUIRE(single);
  CHECK(single->server == std::vector<int>{0});
  CHECK(single->generators == std::vector<int>{1, 2, 3, 4});
  CHECK(single->generator_count == 4);
  CHECK(place(*find_scenario("1x64"), sixteen)->generator_count == 1);
  CHECK(place(*find_scenario("500x64"), one)->server.empty());

  // Scaling: N CPUs for the workers, every other one for the generators.
  auto w8 = place(*find_scenario("scale-w8"), sixteen);
  REQUIRE(w8);
  CHECK(w8->server == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7});
  CHECK(w8->generators == std::vector<int>{8, 9, 10, 11, 12, 13, 14, 15});
  CHECK(w8->generator_count == 8);
  auto w2 = place(*find_scenario("scale-w2"), sixteen);
  CHECK(w2->server == std::vector<int>{0, 1});
  CHECK(w2->generators.size() == 14);
  CHECK(place(*find_scenario("scale-w1"), two)->server == std::vector<int>{0});
  CHECK(place(*find_scenario("scale-w1"), two)->generators == std::vector<int>{1});
  CHECK_FALSE(place(*find_scenario("scale-w2"), two));            // N <= CPUs / 2
  CHECK_FALSE(place(*find_scenario("scale-w8"), std::vector<int>(15, 0)));

  // Paced with workers: everything shares every CPU, whatever the machine.
  for (const auto* cpus : {&two, &sixteen}) {
    auto paced = place(*find_scenario("paced-w2"), *cpus);
    REQUIRE(paced);
    CHECK(paced->server.empty());
    CHECK(paced->generators.empty());
    CHECK(paced->generator_count == 1);
  }
  // Spread: pinned where the machine has 2N CPUs, shared otherwise.
  CHECK(place(*find_scenario("spread-w8"), sixteen)->server.size() == 8);
  CHECK(place(*find_scenario("spread-w8"), two)->server.empty());
}

TEST_CASE("bench reads each worker's open connections and their spread", "[bench]") {
  CHECK(parse_ppid("4243 (switch board) S 4242 4242 1 0") == std::optional<long>(4242));
  CHECK_FALSE(parse_ppid("4243 (x) S"));
  CHECK_FALSE(parse_ppid("garbage"));

  const std::string err =
      "echo: listening on 127.0.0.1:4000\n"
      "echo: worker 1 (pid 11): stats: open 3 total 9 rejected 0\n"
      "echo: worker 0 (pid 10): stats: open 5 total 9 rejected 0\n"
      "echo: stats (all 2 workers, 2 reported): open 8 total 18\n"
      "echo: worker 0 (pid 10): stats: open 600 total 700 rejected 0\n"
      "echo: worker 1 (pid 11): stats: open 400 total 500 rejected 0\n"
      "echo: stats (all 2 workers, 2 reported): open 1000 total 1200\n";
  CHECK(worker_open_counts(err) == std::vector<std::uint64_t>{600, 400});  // the last line of each, by number
  CHECK(worker_open_counts("echo: stats: open 3 total 9\n").empty());      // a single server
  CHECK(spread_ratio({600, 400}) == Approx(1.5));
  CHECK(spread_ratio({125, 125, 125}) == Approx(1.0));
  CHECK_FALSE(spread_ratio({}));
  CHECK(std::isinf(*spread_ratio({1000, 0})));
}

namespace {
cell worker_cell(const std::string& scen, std::vector<double> rps, std::vector<double> cpu, std::vector<double> gen) {
  cell c;
  c.server = "switchboard-epoll";
  c.scenario = scen;
  c.rps = std::move(rps);
  c.cpu_us_per_rt = std::move(cpu);
  c.generator_cpu = std::move(gen);
  c.p50_us = c.p99_us = c.bytes_per_conn = c.instructions_per_rt = c.spread = {no_figure, no_figure, no_figure};
  return c;
}
}  // namespace

TEST_CASE("bench judges the workers' targets where this machine can", "[bench]") {
  std::vector<cell> cells;
  cells.push_back(worker_cell("scale-w1", {100, 100, 100}, {5, 5, 5}, {0.5, 0.5, 0.5}));
  cells.push_back(worker_cell("scale-w2", {170, 160, 180}, {5, 5, 5}, {0.6, 0.6, 0.6}));
  cells.push_back(worker_cell("scale-w4", {300, 300, 300}, {5, 5, 5}, {0.95, 0.95, 0.95}));
  cells.push_back(worker_cell("scale-w8", {600, 600, 600}, {5, 5, 5}, {0.5, 0.5, 0.5}));
  cells.push_back(worker_cell("paced-w1", {20, 20, 20}, {10, 10, 10}, {0.2, 0.2, 0.2}));
  cells.push_back(worker_cell("paced-w2", {20, 20, 20}, {10.4, 10.6, 11}, {0.2, 0.2, 0.2}));
  cells.push_back(worker_cell("spread-w8", {no_figure, no_figure, no_figure}, {no_figure, no_figure, no_figure},
                              {no_figure, no_figure, no_figure}));
  cells.back().spread = {1.2, 1.6, 1.4};
  cells.back().per_worker = "130/120/125/125/125/125/125/125";
  const auto rows = summarize(cells, servers_for({"epoll"}, false));
  REQUIRE(rows.size() == 7);
  CHECK_FALSE(rows[0].ratio);
  CHECK(rows[1].ratio == Approx(1.7));  // rps to one worker's, median over pairs
  CHECK(rows[1].generator_cpu == Approx(0.6));
  CHECK(rows[5].ratio == Approx(1.06));  // paced: CPU per round trip to one worker's
  CHECK(rows[6].spread == Approx(1.4));

  const std::string table = format_table(rows);
  CHECK(table.find("gen CPU %") != std::string::npos);
  CHECK(table.find("1.40 (130/120/") != std::string::npos);
  CHECK(table.find("95") != std::string::npos);  // the saturated generators' share
  {
    // Syscalls are not counted with workers: "-", not "n/a".
    const auto at = table.find("switchboard-epoll  scale-w1");
    REQUIRE(at != std::string::npos);
    std::istringstream line(table.substr(at, table.find('\n', at) - at));
    std::vector<std::string> columns;
    for (std::string w; line >> w;) columns.push_back(w);
    REQUIRE(columns.size() > 6);
    CHECK(columns[6] == "-");
  }

  auto has = [](const std::vector<std::string>& lines, const std::string& needle) {
    return std::any_of(lines.begin(), lines.end(), [&](const std::string& l) { return l.find(needle) != std::string::npos; });
  };
  const auto big = judge_targets(rows, 16);
  CHECK(has(big, "target met: switchboard-epoll rps at scale-w2 is 1.70x one worker's (target >= 1.6x)"));
  CHECK(has(big, "target not judged: switchboard-epoll rps at scale-w4 is 3.00x one worker's (target >= 3.2x): "
                 "the generators were 95% busy"));
  CHECK(has(big, "target MISSED: switchboard-epoll rps at scale-w8 is 6.00x one worker's (target >= 6.4x)"));
  CHECK(has(big, "target MISSED: switchboard-epoll CPU per round trip at paced-w2 is 1.06x one worker's"));
  CHECK(has(big, "target met: switchboard-epoll max/min connections per worker at spread-w8 is 1.40"));
  CHECK(big.size() == 5);

  const auto small = judge_targets(rows, 2);
  CHECK(has(small, "target not judged: switchboard-epoll rps at scale-w2 is 1.70x one worker's (target >= 1.6x): "
                   "needs 4 CPUs, 2 here"));
  CHECK(has(small, "target not judged: switchboard-epoll max/min connections per worker at spread-w8"));
  CHECK(has(small, "target MISSED: switchboard-epoll CPU per round trip at paced-w2"));  // judged anywhere
  CHECK(small.size() == 5);

  // A worker that held nothing: the spread is infinite, not missing.
  cells.back().spread = {std::numeric_limits<double>::infinity(), 1.2, std::numeric_limits<double>::infinity()};
  const auto lopsided = summarize(cells, servers_for({"epoll"}, false));
  CHECK(std::isinf(*lopsided[6].spread));
  CHECK(format_table(lopsided).find("inf (130/") != std::string::npos);
}

TEST_CASE("bench sweeps: connections from 1 to 5\\,000 and 50 active beside 0 to 5\\,000 idle; pipelined", "[bench]") {
  const auto sweep = parse({"--scenarios", "sweep"}).opts.scenarios;
  CHECK(sweep == std::vector<std::string>{"1x64", "10x64", "50x64", "100x64", "500x64", "1000x64", "2000x64",
                                          "5000x64"});
  const std::vector<std::uint32_t> counts{1, 10, 50, 100, 500, 1000, 2000, 5000};
  for (std::size_t i = 0; i < sweep.size(); ++i) {
    const scenario& s = *find_scenario(sweep[i]);
    CHECK(s.connections == counts[i]);
    CHECK(s.size == 64);
    CHECK(s.idle == 0);
    CHECK(s.rate == 0);
    CHECK(s.pipeline == 1);
  }
  const auto idle = parse({"--scenarios", "idle-sweep"}).opts.scenarios;
  CHECK(idle == std::vector<std::string>{"50x64", "50+500idle", "50+1000idle", "50+2000idle", "50+5000idle"});
  const std::vector<std::uint32_t> idle_counts{0, 500, 1000, 2000, 5000};
  for (std::size_t i = 0; i < idle.size(); ++i) {
    CHECK(find_scenario(idle[i])->connections == 50);
    CHECK(find_scenario(idle[i])->idle == idle_counts[i]);
  }
  // Both groups at once: 50x64 once.
  CHECK(parse({"--scenarios", "sweep,idle-sweep"}).opts.scenarios.size() == 12);

  const scenario& pipelined = *find_scenario("50x64p16");
  CHECK(pipelined.pipeline == 16);
  CHECK(pipelined.connections == 50);
  CHECK(pipelined.rate == 0);
  for (const server_spec& s : servers_for({"epoll"}, true)) CHECK(runs_in(s, pipelined) == !s.iterative);

  // Pipelined, the ratio is rps against the loop, as unpaced ping-pong.
  auto make = [](std::string server, std::vector<double> rps) {
    cell c;
    c.server = std::move(server);
    c.scenario = "50x64p16";
    c.rps = std::move(rps);
    return c;
  };
  const auto rows = summarize({make("switchboard-epoll", {900, 1100, 1000}), make("echo-epoll", {1000, 1000, 1000})},
                              servers_for({"epoll"}, true));
  CHECK(rows[0].ratio == Approx(1.0));
}
