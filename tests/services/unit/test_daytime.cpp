// The daytime line (RFC 867), formatted from a time point and parsed back.
#include <catch2/catch.hpp>

#include <chrono>
#include <random>

#include "daytime/protocol.hpp"

using namespace switchboard::services::daytime;
using namespace std::chrono;

namespace {
sys_seconds at(int y, unsigned m, unsigned d, int hh, int mm, int ss) {
  return sys_days{year{y} / month{m} / day{d}} + hours{hh} + minutes{mm} + seconds{ss};
}
}  // namespace

TEST_CASE("the daytime line has the RFC's suggested form, in UTC, day not padded", "[daytime]") {
  CHECK(daytime_line(at(2026, 11, 2, 23, 4, 23)) == "Monday, November 2, 2026 23:04:23-UTC\r\n");
  CHECK(daytime_line(at(2000, 2, 29, 0, 0, 0)) == "Tuesday, February 29, 2000 00:00:00-UTC\r\n");
  CHECK(daytime_line(at(1999, 12, 31, 23, 59, 59)) == "Friday, December 31, 1999 23:59:59-UTC\r\n");
  CHECK(daytime_line(sys_seconds{}) == "Thursday, January 1, 1970 00:00:00-UTC\r\n");
  // Below a second is dropped, not rounded.
  CHECK(daytime_line(at(2026, 7, 19, 12, 0, 5) + milliseconds(999)) ==
        "Sunday, July 19, 2026 12:00:05-UTC\r\n");
}

TEST_CASE("daytime lines parse back to the second they were made from", "[daytime]") {
  std::mt19937_64 random(867);
  for (int i = 0; i < 2000; ++i) {
    const sys_seconds when{seconds{static_cast<std::int64_t>(random() % 8'000'000'000)}};
    const std::string line = daytime_line(when);
    INFO(line);
    CHECK(parse_daytime_line(line) == when);
  }
  CHECK(parse_daytime_line("Monday, November 2, 2026 23:04:23-UTC") == at(2026, 11, 2, 23, 4, 23));
}

TEST_CASE("parse_daytime_line refuses what is not such a line", "[daytime]") {
  for (const char* bad : {
           "", "Monday", "Monday, November 02, 2026 23:04:23-UTC",  // zero-padded day
           "Tuesday, November 2, 2026 23:04:23-UTC",                  // wrong weekday
           "Monday, November 31, 2026 23:04:23-UTC",                  // no such date
           "Monday, November 2, 2026 24:04:23-UTC", "Monday, November 2, 2026 23:4:23-UTC",
           "Monday, November 2, 2026 23:04:23-GMT", "Monday, November 2, 2026 23:04:23-UTC junk",
           "Mon, Nov 2, 2026 23:04:23-UTC"}) {
    INFO(bad);
    CHECK(parse_daytime_line(bad) == std::nullopt);
  }
}
