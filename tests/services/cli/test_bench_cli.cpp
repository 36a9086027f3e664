// switchboard bench end to end, at its smallest: one backend, one scenario,
// one short run (built only with bench/, whose load generator it drives).
#include <catch2/catch.hpp>

#include <sched.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "../../support/async.hpp"

using namespace switchboard::testing;

namespace {
// The words of the table row that starts with `start` (server and scenario);
// none when there is no such row.
std::vector<std::string> row_columns(const std::string& table, const std::string& start) {
  const auto at = table.find(start);
  if (at == std::string::npos) return {};
  std::istringstream row(table.substr(at, table.find('\n', at) - at));
  std::vector<std::string> columns;
  for (std::string w; row >> w;) columns.push_back(w);
  return columns;
}
}  // namespace

TEST_CASE("bench --quick on one backend and two scenarios prints the table and a picture and exits 0", "[cli][bench]") {
  temp_dir dir;
  const std::string plot = dir.path() + "/bench.svg";
  auto r = run_command({program(), "bench", "--quick", "--seconds", "1", "--backends", "epoll",
                        "--scenarios", "50x64,500x64", "--plot", plot},
                       60s);
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK(r.out.find("CPU us/RT") != std::string::npos);
  // One row with a measured rate: "switchboard-epoll  50x64  <digits>".
  const auto row = row_columns(r.out, "switchboard-epoll  50x64");
  REQUIRE(row.size() >= 3);
  CHECK(std::isdigit(static_cast<unsigned char>(row[2][0])));
  CHECK(r.out.find("errors") != std::string::npos);
  // How busy the machine was: a figure in the "other %" column, the one after gen CPU %.
  CHECK(r.out.find("other %") != std::string::npos);
  REQUIRE(row.size() > 10);
  CHECK(std::isdigit(static_cast<unsigned char>(row[10][0])));
  // The picture: two scenarios make a line of the connection sweep, named
  // after its server (the panels are tested in services_unit).
  std::ifstream drawn(plot);
  const std::string svg{std::istreambuf_iterator<char>(drawn), {}};
  CHECK(svg.find("<svg ") != std::string::npos);
  CHECK(svg.find(">Connection sweep: ") != std::string::npos);
  CHECK(svg.find(">switchboard-epoll<") != std::string::npos);
}

TEST_CASE("bench rejects an unknown scenario with status 2", "[cli][bench]") {
  auto r = run_command({program(), "bench", "--scenarios", "3x3"}, 20s);
  CHECK(r.status == 2);
  CHECK(r.err.find("unknown scenario '3x3'") != std::string::npos);
}

TEST_CASE("bench counts instructions per round trip under callgrind, or says why it cannot", "[cli][bench]") {
  auto r = run_command({program(), "bench", "--backends", "epoll", "--scenarios", "instructions", "--pairs", "1"},
                       90s);
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK(r.out.find("instr/RT") != std::string::npos);
  // server, scenario, six traffic and memory columns left empty, then instr/RT.
  const auto row = row_columns(r.out, "switchboard-epoll  instructions");
  REQUIRE(row.size() >= 9);
  CHECK(row[2] == "-");
  const std::string& instructions = row[8];
  INFO(instructions);
  if (instructions == "n/a") {
    CHECK(r.out.find("valgrind --tool=callgrind does not run here") != std::string::npos);
  } else {
    CHECK(std::all_of(instructions.begin(), instructions.end(), [](unsigned char c) { return std::isdigit(c) != 0; }));
  }
}

TEST_CASE("bench spread-w2 counts the connections of each of two workers; scale-w8 is left out on a small machine",
          "[cli][bench]") {
  auto r = run_command({program(), "bench", "--backends", "epoll", "--scenarios", "spread-w2,scale-w8", "--pairs", "1"},
                       90s);
  INFO(r.err);
  REQUIRE(r.status == 0);
  // "switchboard-epoll  spread-w2  - ... -  1.04 (510/490)  -  0": two counts adding up to 1,000.
  const auto row = row_columns(r.out, "switchboard-epoll  spread-w2");
  REQUIRE(row.size() >= 13);
  const std::string counts = row[12];
  REQUIRE(counts.size() > 2);
  const auto slash = counts.find('/');
  REQUIRE(slash != std::string::npos);
  CHECK(std::stoi(counts.substr(1, slash - 1)) + std::stoi(counts.substr(slash + 1)) == 1000);
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  REQUIRE(::sched_getaffinity(0, sizeof allowed, &allowed) == 0);
  if (CPU_COUNT(&allowed) < 16) CHECK(r.err.find("scale-w8 left out") != std::string::npos);
}
