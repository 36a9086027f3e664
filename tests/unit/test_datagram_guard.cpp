#include <catch2/catch.hpp>

#include "common/datagram_guard.hpp"

using namespace switchboard;
using namespace switchboard::services;
using namespace std::chrono_literals;

namespace {
endpoint source(std::uint16_t port, const char* host = "127.0.0.1") {
  return *endpoint::ip(host, port);
}
}  // namespace

TEST_CASE("datagrams from privileged source ports get no reply", "[unit][udp]") {
  datagram_guard guard({});
  for (std::uint16_t port : {7, 13, 19, 53, 123, 1023}) CHECK_FALSE(guard.allow(source(port)));
  CHECK(guard.allow(source(1024)));
  CHECK(guard.dropped() == 6);
}

TEST_CASE("one source gets its burst, then its rate", "[unit][udp]") {
  datagram_guard guard({.per_source_rate = 10, .per_source_burst = 5});
  const auto t0 = clock::now();
  int allowed = 0;
  for (int i = 0; i < 100; ++i) allowed += guard.allow(source(40000), t0);
  CHECK(allowed == 5);
  // A second later the bucket holds its burst again, no more.
  allowed = 0;
  for (int i = 0; i < 100; ++i) allowed += guard.allow(source(40000), t0 + 1s);
  CHECK(allowed == 5);
  // Other sources are unaffected by the first one's flood.
  CHECK(guard.allow(source(40001), t0 + 1s));
}

TEST_CASE("the total rate caps a flood spread over many sources", "[unit][udp]") {
  datagram_guard guard({.per_source_rate = 1000, .per_source_burst = 1000, .total_rate = 100});
  const auto t0 = clock::now();
  int allowed = 0;
  for (std::uint16_t port = 2000; port < 3000; ++port) allowed += guard.allow(source(port), t0);
  CHECK(allowed == 100);
}

TEST_CASE("the table of sources stays bounded under a spoofed flood", "[unit][udp]") {
  datagram_guard guard({.per_source_rate = 1, .per_source_burst = 1, .max_sources = 100});
  const auto t0 = clock::now();
  for (std::uint16_t port = 1024; port < 60000; ++port) {
    (void)guard.allow(source(port), t0);
  }
  CHECK(guard.sources() <= 100);
  // Idle entries are forgotten once their bucket has refilled, making room again.
  CHECK(guard.allow(source(61000), t0 + 10s));
}
