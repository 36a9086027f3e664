// The benchmark's picture: round ticks, and an SVG that an XML parser reads,
// naming every server and panel of a realistic run.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "bench/plot.hpp"
#include "process.hpp"

using namespace switchboard::tools;
using namespace switchboard::tools::bench;
using namespace std::chrono_literals;

namespace {
constexpr double no_figure = std::numeric_limits<double>::quiet_NaN();

std::size_t count(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// Parses `svg` with Python's XML parser and looks for each of `texts` as the
// whole content of a <text> element; what went wrong, or nothing.
std::string xml_problems(const std::string& svg, const std::vector<std::string>& texts) {
  temp_dir dir;
  const std::string file = dir.path() + "/plot.svg";
  std::ofstream(file) << svg;
  const char* const checker = R"py(
import sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "{http://www.w3.org/2000/svg}svg", root.tag
shown = {"".join(t.itertext()).strip() for t in root.iter("{http://www.w3.org/2000/svg}text")}
missing = [t for t in sys.argv[2:] if t not in shown]
assert not missing, missing
)py";
  std::vector<std::string> argv{"python3", "-c", checker, file};
  argv.insert(argv.end(), texts.begin(), texts.end());
  const auto checked = run_command(argv, 30s);
  return checked.status == 0 ? "" : checked.err + checked.out;
}

const std::vector<std::string> servers{"switchboard-select", "switchboard-epoll", "switchboard-uring",
                                       "echo-select",        "echo-epoll",        "echo-uring",
                                       "echo-asio"};

// Three pairs of a run as this machine gives them: the loops a little ahead,
// every figure drifting from pair to pair, select unable to go past
// FD_SETSIZE.
std::vector<cell> realistic_cells() {
  struct base {
    const char* scenario;
    double rps, cpu_us, p99_us, instructions;
  };
  const std::vector<base> scenarios{{"1x64", 21000, 0, 0, 0},    {"50x64", 98000, 0, 0, 0},
                                    {"500x64", 112000, 0, 0, 0}, {"5000x64", 81000, 0, 0, 0},
                                    {"50+5000idle", 93000, 0, 0, 0}, {"paced", 50000, 8, 250, 0},
                                    {"instructions", 0, 0, 0, 100}};
  // Per server: rps, CPU, p99 and instructions against the base, and each
  // pair's drift.
  struct server_figures {
    double speed, cost, tail, instructions;
    std::vector<double> drift;
  };
  const std::vector<server_figures> figures{
      {0.97, 1.10, 1.5, 8.94, {0.95, 1.00, 1.06}}, {0.99, 1.07, 1.3, 8.71, {1.02, 0.97, 1.00}},
      {1.02, 1.11, 1.8, 10.31, {0.98, 1.03, 0.96}}, {1.00, 1.00, 1.0, 0.68, {1.00, 1.00, 1.00}},
      {1.00, 1.00, 1.0, 0.51, {1.03, 0.99, 0.98}}, {1.00, 1.00, 1.0, 1.96, {0.97, 1.01, 1.02}},
      {0.80, 1.40, 1.2, 24.41, {1.00, 0.98, 1.01}}};
  std::vector<cell> cells;
  for (const base& b : scenarios) {
    const scenario* s = find_scenario(b.scenario);
    for (std::size_t i = 0; i < servers.size(); ++i) {
      const server_figures& f = figures[i];
      cell c;
      c.server = servers[i];
      c.scenario = b.scenario;
      const bool beyond_select = servers[i].ends_with("select") && s->connections + s->idle > 1000;
      for (const double drift : f.drift) {
        auto figure = [&](double value) { return value > 0 && !beyond_select ? value * drift : no_figure; };
        c.rps.push_back(figure(s->rate > 0 ? s->rate : b.rps * f.speed));
        c.cpu_us_per_rt.push_back(figure(b.cpu_us * f.cost));
        c.p99_us.push_back(figure(b.p99_us * f.tail));
        c.instructions_per_rt.push_back(figure(b.instructions * f.instructions));
      }
      if (beyond_select) c.note = "server failed";
      cells.push_back(std::move(c));
    }
  }
  return cells;
}

std::vector<row> realistic_rows() {
  return summarize(realistic_cells(), servers_for({"select", "epoll", "uring"}, true));
}

bool round_value(double tick, double step) {
  const double n = tick / step;
  return std::fabs(n - std::round(n)) < 1e-6;
}
}  // namespace

TEST_CASE("bench plot ticks: 1-2-5 steps that cover the data", "[bench]") {
  CHECK(round_ticks(0, 129232, 8) ==
        std::vector<double>{0, 20000, 40000, 60000, 80000, 100000, 120000, 140000});
  const auto ratios = round_ticks(0.89, 1.31, 6);
  REQUIRE(ratios.size() == 7);
  CHECK(ratios.front() == Approx(0.8));
  CHECK(ratios.back() == Approx(1.4));

  struct range {
    double lo, hi;
  };
  for (const range r : {range{0, 1}, range{0, 7.3}, range{3.2, 3.3}, range{0.89, 1.31}, range{0, 2441},
                        range{0, 5000}, range{-4, 17}, range{1, 1}, range{0, 0}, range{12345, 123456789}}) {
    INFO(r.lo << " to " << r.hi);
    const auto ticks = round_ticks(r.lo, r.hi, 6);
    REQUIRE(ticks.size() >= 2);
    CHECK(ticks.size() <= 8);
    CHECK(ticks.front() <= r.lo);
    CHECK(ticks.back() >= r.hi);
    const double step = ticks[1] - ticks[0];
    const double mantissa = step / std::pow(10.0, std::floor(std::log10(step) + 1e-9));
    CHECK((std::fabs(mantissa - 1) < 1e-6 || std::fabs(mantissa - 2) < 1e-6 || std::fabs(mantissa - 5) < 1e-6));
    for (const double t : ticks) CHECK(round_value(t, step));
  }

  CHECK(tick_text(0, 20000) == "0");
  CHECK(tick_text(40000, 20000) == "40k");
  CHECK(tick_text(1500000, 500000) == "1.5M");
  CHECK(tick_text(1.2, 0.1) == "1.2");
  CHECK(tick_text(0.3 * 1, 0.1) == "0.3");
  CHECK(tick_text(250, 50) == "250");
  CHECK(tick_text(1500, 500) == "1,500");
  CHECK(tick_text(-10, 5) == "-10");
  CHECK(tick_text(200000, 100000) == "0.2M");
  CHECK(tick_text(2000, 2000) == "2k");
  CHECK(tick_text(0.05, 0.05) == "0.05");
}

TEST_CASE("bench summary: the spread of the per-pair ratios beside their median", "[bench]") {
  const auto rows = realistic_rows();
  const auto at = [&](const std::string& server, const std::string& scen) {
    const auto r = std::find_if(rows.begin(), rows.end(),
                                [&](const row& x) { return x.server == server && x.scenario == scen; });
    REQUIRE(r != rows.end());
    return *r;
  };
  // switchboard-epoll 0.99 x drift {1.02, 0.97, 1.00} over echo-epoll's {1.03, 0.99, 0.98}.
  const row epoll = at("switchboard-epoll", "50x64");
  REQUIRE(epoll.ratio_min);
  REQUIRE(epoll.ratio_max);
  CHECK(*epoll.ratio_min == Approx(0.99 * 0.97 / 0.99));
  CHECK(*epoll.ratio_max == Approx(0.99 * 1.00 / 0.98));
  CHECK(*epoll.ratio == Approx(0.99 * 1.02 / 1.03));
  const row paced = at("switchboard-uring", "paced");
  CHECK(*paced.ratio_min == Approx(1.11 * 0.96 / 1.02));
  CHECK(*paced.ratio_max == Approx(1.11 * 1.03 / 1.01));
  CHECK_FALSE(at("echo-epoll", "50x64").ratio_min);
  CHECK_FALSE(at("switchboard-select", "5000x64").ratio_max);  // no figure
}

TEST_CASE("bench plot: a realistic run draws every panel, parses as XML and names every server", "[bench]") {
  const auto rows = realistic_rows();
  const std::string svg = svg_chart(rows);
  CHECK(svg == svg_chart(rows));  // deterministic

  std::vector<std::string> texts = servers;
  for (const char* title :
       {"Throughput against the hand-written loop of the same mechanism: higher is better",
        "Paced: CPU per round trip against the loop: lower is better",
        "Instructions per round trip against the loop: lower is better",
        "paced: server CPU per round trip, lower is better", "paced: p99 latency, lower is better",
        "instructions: user-space instructions per round trip, lower is better",
        "Connection sweep: round trips per second against the number of connections",
        "An idle crowd: 50 active connections beside idle ones"}) {
    texts.emplace_back(title);
  }
  // Axis titles with their units; the sweep's x ticks, round values of a log scale.
  for (const char* axis_text : {"rps ÷ the loop's rps", "CPU/RT ÷ the loop's CPU/RT", "µs per round trip", "µs",
                                "instructions per round trip", "round trips per second", "connections (log scale)",
                                "idle connections beside the 50 active ones", "1", "10", "100", "1k", "5k", "1.00",
                                "0", "120k"}) {
    texts.emplace_back(axis_text);
  }
  CHECK(xml_problems(svg, texts).empty());

  // A dot with whiskers per switchboard server and scenario it has a ratio in:
  // five unpaced scenarios less select's two beyond FD_SETSIZE, paced, instructions.
  CHECK(count(svg, " (pairs ") == 3 * 5 - 2 + 3 + 3);
  CHECK(count(svg, "switchboard-epoll at 50x64: 0.98 (pairs 0.97 to 1.01)") == 1);
  // The sweep: a point per server and scenario with rps, select's line stops at 500.
  CHECK(count(svg, "switchboard-select at 500x64: ") == 2);  // its ratio and the sweep's point
  CHECK(count(svg, "switchboard-select at 5000x64") == 0);
  // Beside the idle crowd select has the single point at 0: no line of its own, a name under the legend.
  CHECK(count(svg, "echo-asio at 50+5000idle: ") == 1);
  CHECK(count(svg, ">one point, no line:<") == 1);
  CHECK(count(svg, "switchboard-select at 50x64: ") == 2);  // its ratio and the connection sweep
}

TEST_CASE("bench plot: panels without data are left out, names escaped, nothing measured still an SVG", "[bench]") {
  const std::string nothing = svg_chart({});
  CHECK(xml_problems(nothing, {"Nothing was measured"}).empty());

  std::vector<row> memory_only(1);
  memory_only[0].server = "switchboard-epoll";
  memory_only[0].scenario = "memory";
  memory_only[0].bytes_per_conn = 1500;
  CHECK(xml_problems(svg_chart(memory_only), {"Nothing to draw", "No scenario measured has a figure drawn here."})
            .empty());

  // One scenario: ratios, but no line with two points.
  std::vector<row> one(2);
  one[0].server = "switchboard-<epoll>&\"co\"";
  one[0].scenario = "50x64";
  one[0].rps = 95000;
  one[0].ratio = 0.95;
  one[1].server = "echo-epoll";
  one[1].scenario = "50x64";
  one[1].rps = 100000;
  const std::string svg = svg_chart(one);
  CHECK(xml_problems(svg, {"switchboard-<epoll>&\"co\"", "0.95"}).empty());
  CHECK(count(svg, "switchboard-&lt;epoll&gt;&amp;&quot;co&quot;") >= 1);
  CHECK(count(svg, "<epoll>") == 0);
  CHECK(count(svg, "Connection sweep") == 0);
  CHECK(count(svg, "Paced") == 0);
}

TEST_CASE("bench plot: neither the pipelined scenario nor a run with errors has a point on the connection sweep", "[bench]") {
  std::vector<row> rows;
  for (const char* scen : {"1x64", "500x64", "50x64p16"}) {
    const bool pipelined = std::string(scen) == "50x64p16";
    row ours;
    ours.server = "switchboard-epoll";
    ours.scenario = scen;
    ours.rps = pipelined ? 400000 : 90000;
    ours.ratio = ours.ratio_min = ours.ratio_max = 0.9;
    row loop;
    loop.server = "echo-epoll";
    loop.scenario = scen;
    loop.rps = pipelined ? 440000 : 100000;
    rows.push_back(ours);
    rows.push_back(loop);
  }
  const std::string svg = svg_chart(rows);
  CHECK(xml_problems(svg, {"50x64p16", "Connection sweep: round trips per second against the number of connections"})
            .empty());
  CHECK(count(svg, "switchboard-epoll at 50x64p16: ") == 1);  // the ratio's dot alone
  CHECK(count(svg, "switchboard-epoll at 500x64: ") == 2);    // its ratio and the sweep's point

  // A run with errors served fewer connections than the scenario has: no point.
  rows[3].errors = 724;  // echo-epoll at 500x64
  CHECK(count(svg_chart(rows), "echo-epoll at 500x64: ") == 0);
  CHECK(count(svg, "echo-epoll at 500x64: ") == 1);
}
