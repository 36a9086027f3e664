#include <catch2/catch.hpp>

#include <switchboard/source_key.hpp>

using namespace switchboard;
using namespace switchboard;

namespace {
source_key key(const char* host, std::uint16_t port = 40000) {
  return source_key::of(*endpoint::ip(host, port));
}
}  // namespace

TEST_CASE("an IPv4 source is its address, whatever the port", "[unit][source]") {
  CHECK(key("192.0.2.1", 1) == key("192.0.2.1", 65535));
  CHECK_FALSE(key("192.0.2.1") == key("192.0.2.2"));
  CHECK_FALSE(key("192.0.2.1") == key("192.0.3.1"));
  CHECK(key("192.0.2.1").to_string() == "192.0.2.1");
  CHECK(key("127.0.0.1").to_string() == "127.0.0.1");
}

TEST_CASE("an IPv6 source is its /64 prefix", "[unit][source]") {
  CHECK(key("2001:db8:1:2::1") == key("2001:db8:1:2:ffff:ffff:ffff:ffff"));
  CHECK(key("2001:db8:1:2::1", 1) == key("2001:db8:1:2:abcd::9", 2));
  CHECK_FALSE(key("2001:db8:1:2::1") == key("2001:db8:1:3::1"));
  CHECK_FALSE(key("2001:db8:1:2::1") == key("2001:db9:1:2::1"));
  CHECK(key("2001:db8:1:2:3:4:5:6").to_string() == "2001:db8:1:2::/64");
  CHECK(key("::1").to_string() == "::/64");
}

TEST_CASE("an IPv4-mapped IPv6 address is its IPv4 source, and never an IPv6 prefix",
          "[unit][source]") {
  CHECK(key("::ffff:192.0.2.1") == key("192.0.2.1"));
  CHECK_FALSE(key("::ffff:192.0.2.1") == key("::ffff:192.0.2.2"));
  CHECK(key("::ffff:192.0.2.1").to_string() == "192.0.2.1");
  // 0.0.0.0 and :: have the same bits, and are different sources.
  CHECK_FALSE(key("0.0.0.0") == key("::"));
}

TEST_CASE("every Unix-domain peer is the one local source", "[unit][source]") {
  const source_key unnamed = source_key::of(endpoint::unix_path("/tmp/a.sock").value());
  CHECK(unnamed.is_local());
  CHECK(unnamed == source_key::of(endpoint::unix_path("/tmp/b.sock").value()));
  CHECK_FALSE(key("127.0.0.1").is_local());
  CHECK(unnamed.to_string() == "local");
}

TEST_CASE("counts per source stop at their cap and forget sources that hold none",
          "[unit][source]") {
  source_counts counts(3);
  for (int i = 0; i < 3; ++i) CHECK(counts.try_add(key("192.0.2.1", static_cast<std::uint16_t>(5000 + i))));
  CHECK_FALSE(counts.try_add(key("192.0.2.1", 6000)));
  CHECK(counts.held_by(key("192.0.2.1")) == 3);
  // Another address, and another /64, are counted apart.
  CHECK(counts.try_add(key("192.0.2.2")));
  CHECK(counts.try_add(key("2001:db8:0:1::1")));
  CHECK(counts.try_add(key("2001:db8:0:1::2")));
  CHECK(counts.try_add(key("2001:db8:0:1::3")));
  CHECK_FALSE(counts.try_add(key("2001:db8:0:1::4")));
  CHECK(counts.sources() == 3);
  counts.remove(key("192.0.2.1"));
  CHECK(counts.try_add(key("192.0.2.1")));
  counts.remove(key("192.0.2.2"));
  CHECK(counts.sources() == 2);
  CHECK(counts.held_by(key("192.0.2.2")) == 0);
}

TEST_CASE("the local source is counted and never capped", "[unit][source]") {
  source_counts counts(3);
  const source_key local = source_key::of(endpoint::unix_path("/tmp/a.sock").value());
  for (int i = 0; i < 10; ++i) CHECK(counts.try_add(local));
  CHECK(counts.held_by(local) == 10);
  counts.remove(local);
  CHECK(counts.held_by(local) == 9);
}

TEST_CASE("a cap of 0 counts without a limit", "[unit][source]") {
  source_counts counts(0);
  for (int i = 0; i < 10'000; ++i) CHECK(counts.try_add(key("192.0.2.1")));
  CHECK(counts.held_by(key("192.0.2.1")) == 10'000);
}
