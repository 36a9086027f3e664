#include <catch2/catch.hpp>

#include <string>

#include <switchboard/datagram_guard.hpp>

using namespace switchboard;
using namespace switchboard;
using namespace std::chrono_literals;

namespace {
endpoint source(std::uint16_t port, const char* host = "127.0.0.1") {
  return *endpoint::ip(host, port);
}

// The `n`th of many distinct IPv4 addresses, from 10.0.0.0/8.
endpoint nth_address(std::uint32_t n, std::uint16_t port = 40000) {
  const std::string host = "10." + std::to_string(n >> 16 & 255) + "." + std::to_string(n >> 8 & 255) +
                           "." + std::to_string(n & 255);
  return source(port, host.c_str());
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
  CHECK(guard.allow(source(40000, "127.0.0.2"), t0 + 1s));
}

TEST_CASE("every port of one address, and every address of one IPv6 /64, share one bucket",
          "[unit][udp]") {
  datagram_guard guard({.per_source_rate = 10, .per_source_burst = 5});
  const auto t0 = clock::now();
  // Reflection at one victim from 400 ports is bounded like reflection from one.
  int allowed = 0;
  for (std::uint16_t port = 20000; port < 20400; ++port) allowed += guard.allow(source(port), t0);
  CHECK(allowed == 5);
  allowed = 0;
  for (int i = 1; i <= 400; ++i) {
    const std::string host = "2001:db8:0:7::" + std::to_string(i);
    allowed += guard.allow(source(40000, host.c_str()), t0);
  }
  CHECK(allowed == 5);
  // The next /64, and the IPv4 address of a mapped IPv6 one, are sources of their own.
  CHECK(guard.allow(source(40000, "2001:db8:0:8::1"), t0));
  CHECK_FALSE(guard.allow(source(40000, "::ffff:127.0.0.1"), t0));
  CHECK(guard.sources() == 3);
}

TEST_CASE("a source's burst is a quarter second of its rate, and 50 at least", "[unit][udp]") {
  const auto t0 = clock::now();
  for (const auto& [rate, burst] : {std::pair{200.0, 50}, {1.0, 50}, {10'000.0, 2'500}}) {
    datagram_guard guard({.per_source_rate = rate});
    int allowed = 0;
    for (int i = 0; i < 10'000; ++i) allowed += guard.allow(source(40000), t0);
    CHECK(allowed == burst);
  }
}

TEST_CASE("the total rate caps a flood spread over many sources", "[unit][udp]") {
  datagram_guard guard({.per_source_rate = 1000, .per_source_burst = 1000, .total_rate = 100});
  const auto t0 = clock::now();
  int allowed = 0;
  for (std::uint32_t n = 0; n < 1000; ++n) allowed += guard.allow(nth_address(n), t0);
  CHECK(allowed == 100);
}

TEST_CASE("the table of sources stays bounded under a spoofed flood", "[unit][udp]") {
  datagram_guard guard({.per_source_rate = 1, .per_source_burst = 1, .max_sources = 100});
  const auto t0 = clock::now();
  for (std::uint32_t n = 0; n < 60000; ++n) (void)guard.allow(nth_address(n), t0);
  CHECK(guard.sources() == 100);
}

TEST_CASE("a full table makes room for each new source by looking at one entry, and answers it",
          "[unit][udp]") {
  // A rate so low that no entry of the flood would age out for minutes.
  datagram_guard guard({.per_source_rate = 0.01, .per_source_burst = 1, .max_sources = 1000});
  const auto t0 = clock::now();
  std::uint64_t answered = 0;
  for (std::uint32_t n = 0; n < 100'000; ++n) answered += guard.allow(nth_address(n), t0 + 1ms * n);
  CHECK(answered == 100'000);
  CHECK(guard.sources() == 1000);
  // Work per datagram is constant: one entry given up per new source past
  // the first thousand, never a walk over the table.
  CHECK(guard.examined() == 99'000);
  // A real client arriving in the middle of the flood is answered at once.
  CHECK(guard.allow(source(50000, "192.0.2.1"), t0 + 100s));
  // A source heard from recently keeps its entry, and so its empty bucket.
  CHECK_FALSE(guard.allow(nth_address(99'999), t0 + 100s));
}
