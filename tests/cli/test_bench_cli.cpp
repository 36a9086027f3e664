// switchboard bench end to end, at its smallest: one backend, one scenario,
// one short run (built only with bench/, whose load generator it drives).
#include <catch2/catch.hpp>

#include <string>

#include "../support/async.hpp"

using namespace switchboard::testing;

TEST_CASE("bench --quick on one backend and scenario prints the table and exits 0", "[cli][bench]") {
  auto r = run_command({program(), "bench", "--quick", "--seconds", "1", "--backends", "epoll",
                        "--scenarios", "50x64"},
                       60s);
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK(r.out.find("CPU us/RT") != std::string::npos);
  // One row with a measured rate: "switchboard-epoll  50x64  <digits>".
  const auto at = r.out.find("switchboard-epoll  50x64");
  REQUIRE(at != std::string::npos);
  const auto figure = r.out.find_first_not_of(' ', r.out.find("50x64", at) + 5);
  CHECK(std::isdigit(static_cast<unsigned char>(r.out[figure])));
  CHECK(r.out.find("errors") != std::string::npos);
}

TEST_CASE("bench rejects an unknown scenario with status 2", "[cli][bench]") {
  auto r = run_command({program(), "bench", "--scenarios", "3x3"}, 20s);
  CHECK(r.status == 2);
  CHECK(r.err.find("unknown scenario '3x3'") != std::string::npos);
}
