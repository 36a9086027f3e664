// Unit tests of the load generator's pure logic (the main is the project's).
#include "loadgen_core.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string_view>
#include <vector>

using loadgen::histogram;

namespace {

loadgen::parse_result parse(std::initializer_list<std::string_view> args) {
  const std::vector<std::string_view> v(args);
  return loadgen::parse_args(v);
}

double relative_error(std::uint64_t got, double want) {
  return std::abs(static_cast<double>(got) - want) / want;
}

}  // namespace

TEST_CASE("a port alone gives the documented defaults", "[bench]") {
  const auto r = parse({"--port", "7000"});
  REQUIRE(r.ok());
  CHECK(r.opts.host == "127.0.0.1");
  CHECK(r.opts.port == 7000);
  CHECK(r.opts.unix_path.empty());
  CHECK(r.opts.connections == 50);
  CHECK(r.opts.size == 64);
  CHECK(r.opts.seconds == 5.0);
  CHECK(r.opts.pipeline == 1);
  CHECK(r.opts.rate == 0.0);
  CHECK(r.opts.idle == 0);
  CHECK(r.opts.warmup == 0.5);
  CHECK_FALSE(r.opts.hold);
  CHECK_FALSE(r.opts.help);
}

TEST_CASE("every option is read in both the spaced and the = form", "[bench]") {
  const auto r = parse({"--host", "::1", "--port=9", "--connections", "10000", "--size=1024",
                        "--seconds", "0.25", "--pipeline=4", "--rate", "20000", "--idle=3",
                        "--warmup", "0", "--connect-timeout=2.5", "--hold"});
  REQUIRE(r.ok());
  CHECK(r.opts.host == "::1");
  CHECK(r.opts.port == 9);
  CHECK(r.opts.connections == 10000);
  CHECK(r.opts.size == 1024);
  CHECK(r.opts.seconds == 0.25);
  CHECK(r.opts.pipeline == 4);
  CHECK(r.opts.rate == 20000.0);
  CHECK(r.opts.idle == 3);
  CHECK(r.opts.warmup == 0.0);
  CHECK(r.opts.connect_timeout == 2.5);
  CHECK(r.opts.hold);
}

TEST_CASE("a count of round trips replaces the warm-up and excludes holding", "[bench]") {
  const auto counted = parse({"--port", "1", "--round-trips", "4000"});
  REQUIRE(counted.ok());
  CHECK(counted.opts.round_trips == 4000);
  CHECK(counted.opts.warmup == 0.0);
  CHECK(parse({"--port", "1", "--round-trips=10", "--warmup", "0"}).ok());
  CHECK(parse({"--port", "1", "--round-trips", "10", "--warmup", "1"}).error.find("--warmup") !=
        std::string::npos);
  CHECK(parse({"--port", "1", "--round-trips", "10", "--hold"}).error.find("--hold") != std::string::npos);
  CHECK_FALSE(parse({"--port", "1", "--round-trips", "0"}).ok());
  CHECK(parse({"--port", "1"}).opts.round_trips == 0);
}

TEST_CASE("a unix socket path replaces the port", "[bench]") {
  const auto r = parse({"--unix", "/tmp/echo.sock"});
  REQUIRE(r.ok());
  CHECK(r.opts.unix_path == "/tmp/echo.sock");
}

TEST_CASE("help is honoured even next to bad options", "[bench]") {
  const auto r = parse({"--help", "--bogus"});
  REQUIRE(r.ok());
  CHECK(r.opts.help);
}

TEST_CASE("numbers with trailing junk, signs, or out of range are rejected", "[bench]") {
  for (auto bad : {"12x", "", "-1", "+5", " 5", "0", "65536", "1e3", "0x10"}) {
    INFO("port " << bad);
    CHECK_FALSE(parse({"--port", bad}).ok());
  }
  for (auto bad : {"0", "-3", "abc", "nan", "inf", "1,5"}) {
    INFO("seconds " << bad);
    CHECK_FALSE(parse({"--port", "1", "--seconds", bad}).ok());
  }
  CHECK_FALSE(parse({"--port", "1", "--connections", "0"}).ok());
  CHECK_FALSE(parse({"--port", "1", "--size", "0"}).ok());
  CHECK_FALSE(parse({"--port", "1", "--pipeline", "0"}).ok());
  CHECK_FALSE(parse({"--port", "1", "--rate", "-1"}).ok());
  CHECK(parse({"--port", "1", "--rate", "0"}).ok());
  CHECK(parse({"--port", "1", "--seconds", "1e1"}).ok());
}

TEST_CASE("usage mistakes are reported with the option's name", "[bench]") {
  CHECK(parse({"--port"}).error.find("--port") != std::string::npos);
  CHECK(parse({"--port", "1", "--frobnicate"}).error.find("--frobnicate") != std::string::npos);
  CHECK(parse({"--port", "1", "--port", "2"}).error.find("twice") != std::string::npos);
  CHECK(parse({"--port", "1", "--hold=yes"}).error.find("--hold") != std::string::npos);
  CHECK_FALSE(parse({"--port", "1", "stray"}).ok());
}

TEST_CASE("exactly one of port and unix must be given", "[bench]") {
  CHECK_FALSE(parse({}).ok());
  CHECK_FALSE(parse({"--connections", "5"}).ok());
  CHECK_FALSE(parse({"--port", "1", "--unix", "/tmp/x"}).ok());
  CHECK_FALSE(parse({"--unix", "/tmp/x", "--host", "localhost"}).ok());
  CHECK_FALSE(parse({"--unix", std::string(200, 'a')}).ok());
}

TEST_CASE("the usage text names every option", "[bench]") {
  const std::string text = loadgen::usage();
  for (auto name : {"--host", "--port", "--unix", "--connections", "--size", "--seconds",
                    "--pipeline", "--rate", "--idle", "--warmup", "--hold", "--connect-timeout",
                    "--round-trips", "--help"}) {
    INFO(name);
    CHECK(text.find(name) != std::string::npos);
  }
}

TEST_CASE("histogram buckets tile the value range without gaps", "[bench]") {
  CHECK(histogram::bucket_low(0) == 0);
  for (std::size_t b = 0; b + 1 < histogram::bucket_count; ++b) {
    REQUIRE(histogram::bucket_high(b) + 1 == histogram::bucket_low(b + 1));
    REQUIRE(histogram::bucket_of(histogram::bucket_low(b)) == b);
    REQUIRE(histogram::bucket_of(histogram::bucket_high(b)) == b);
  }
  CHECK(histogram::bucket_of(UINT64_MAX) == histogram::bucket_count - 1);
}

TEST_CASE("histogram buckets are at most 1/128 of their value wide", "[bench]") {
  for (std::size_t b = histogram::sub_count; b < histogram::bucket_count; ++b) {
    const auto low = histogram::bucket_low(b);
    const auto width = histogram::bucket_high(b) - low + 1;
    REQUIRE(width * 128 <= low);
  }
}

TEST_CASE("small values are recorded exactly", "[bench]") {
  histogram h;
  for (std::uint64_t v : {3u, 7u, 7u, 100u}) h.record(v);
  CHECK(h.count() == 4);
  CHECK(h.min() == 3);
  CHECK(h.max() == 100);
  CHECK(h.percentile(50) == 7);
  CHECK(h.percentile(100) == 100);
  CHECK(h.mean() == Approx(29.25));
}

TEST_CASE("percentiles of a uniform sample are within 1%", "[bench]") {
  histogram h;
  for (std::uint64_t v = 1; v <= 1'000'000; ++v) h.record(v * 1000);  // 1 us .. 1 s in ns
  for (double p : {1.0, 10.0, 50.0, 90.0, 99.0, 99.9, 99.99}) {
    INFO("p" << p);
    CHECK(relative_error(h.percentile(p), p / 100.0 * 1e9) < 0.01);
  }
  CHECK(h.percentile(0) == 1000);
  CHECK(h.percentile(100) == 1'000'000'000);
  CHECK(h.mean() == Approx(500'000'500.0));
}

TEST_CASE("a percentile of a two-valued sample picks the right value", "[bench]") {
  histogram h;
  for (int i = 0; i < 990; ++i) h.record(40'000);
  for (int i = 0; i < 10; ++i) h.record(5'000'000);
  CHECK(relative_error(h.percentile(50), 40'000) < 0.01);
  CHECK(relative_error(h.percentile(99), 40'000) < 0.01);
  CHECK(relative_error(h.percentile(99.9), 5'000'000) < 0.01);
}

TEST_CASE("an empty histogram reports zeros", "[bench]") {
  histogram h;
  CHECK(h.count() == 0);
  CHECK(h.percentile(99) == 0);
  CHECK(h.min() == 0);
  CHECK(h.max() == 0);
  CHECK(h.mean() == 0.0);
}

TEST_CASE("merging histograms equals recording into one", "[bench]") {
  histogram a, b, both;
  for (std::uint64_t v = 1; v < 5000; v += 3) {
    (v % 2 ? a : b).record(v * 17);
    both.record(v * 17);
  }
  a.merge(b);
  CHECK(a.count() == both.count());
  CHECK(a.min() == both.min());
  CHECK(a.max() == both.max());
  for (double p : {5.0, 50.0, 95.0, 99.9}) CHECK(a.percentile(p) == both.percentile(p));
  a.reset();
  CHECK(a.count() == 0);
  CHECK(a.percentile(50) == 0);
}

TEST_CASE("the payload differs per connection and per message", "[bench]") {
  std::array<std::byte, 64> m00{}, m01{}, m10{};
  loadgen::fill_payload(0, 0, 0, m00);
  loadgen::fill_payload(0, 1, 0, m01);
  loadgen::fill_payload(1, 0, 0, m10);
  CHECK(m00 != m01);
  CHECK(m00 != m10);
  CHECK(m01 != m10);
  std::array<std::byte, 64> again{};
  loadgen::fill_payload(0, 0, 0, again);
  CHECK(again == m00);
}

TEST_CASE("the payload filled in pieces equals the payload filled at once", "[bench]") {
  std::array<std::byte, 100> whole{}, pieces{};
  loadgen::fill_payload(7, 42, 0, whole);
  const std::span<std::byte> p(pieces);
  loadgen::fill_payload(7, 42, 0, p.subspan(0, 3));
  loadgen::fill_payload(7, 42, 3, p.subspan(3, 13));
  loadgen::fill_payload(7, 42, 16, p.subspan(16, 84));
  CHECK(whole == pieces);
}

TEST_CASE("verification accepts an intact echo at any offset", "[bench]") {
  std::array<std::byte, 1000> msg{};
  loadgen::fill_payload(3, 9, 0, msg);
  const std::span<const std::byte> m(msg);
  CHECK(loadgen::count_mismatches(3, 9, 0, m) == 0);
  CHECK(loadgen::count_mismatches(3, 9, 5, m.subspan(5, 11)) == 0);
  CHECK(loadgen::count_mismatches(3, 9, 999, m.subspan(999)) == 0);
}

TEST_CASE("verification counts every changed byte", "[bench]") {
  std::array<std::byte, 256> msg{};
  loadgen::fill_payload(3, 9, 0, msg);
  msg[0] ^= std::byte{1};
  msg[77] ^= std::byte{0x80};
  msg[255] = ~msg[255];
  CHECK(loadgen::count_mismatches(3, 9, 0, msg) == 3);
  CHECK(loadgen::count_mismatches(3, 10, 0, msg) > 200);  // the next message's bytes differ
  CHECK(loadgen::count_mismatches(4, 9, 0, msg) > 200);   // another connection's too
}

TEST_CASE("the result line has the documented keys in order", "[bench]") {
  loadgen::options o;
  o.size = 64;
  o.pipeline = 2;
  loadgen::result r;
  r.seconds = 2.0;
  r.round_trips = 1000;
  r.connections = 50;
  r.verify_errors = 1;
  r.io_errors = 2;
  for (int i = 0; i < 1000; ++i) r.latency.record(41'000);
  CHECK(loadgen::format_result(o, r) ==
        "rps=500.0 mbps=0.1 p50_us=41.0 p90_us=41.0 p99_us=41.0 p999_us=41.0 max_us=41.0 "
        "mean_us=41.0 round_trips=1000 errors=3 connect_errors=0 io_errors=2 verify_errors=1 "
        "connections=50 idle=0 size=64 pipeline=2 rate=0.0 seconds=2.00");
}

TEST_CASE("a run that measured nothing reports zero rates", "[bench]") {
  loadgen::options o;
  loadgen::result r;
  const std::string line = loadgen::format_result(o, r);
  CHECK(line.starts_with("rps=0.0 mbps=0.0 p50_us=0.0"));
  CHECK(line.ends_with("seconds=0.00"));
}
