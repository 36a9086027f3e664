// The files service's UDP cookies: a client's proof that it receives at its
// address, kept by no one but the client.
#include <catch2/catch.hpp>

#include "files/cookie.hpp"

using namespace switchboard;
using services::files::cookie_jar;
using namespace std::chrono_literals;

TEST_CASE("a UDP cookie is good only for the address and port it was sent to", "[unit][files][udp]") {
  const cookie_jar jar;
  const auto now = clock::now();
  const endpoint client = *endpoint::ip("127.0.0.1", 40000);
  const auto proof = jar.issue(client, now);
  CHECK(jar.valid(proof, client, now));
  CHECK_FALSE(jar.valid(proof, *endpoint::ip("127.0.0.1", 40001), now));
  CHECK_FALSE(jar.valid(proof, *endpoint::ip("127.0.0.2", 40000), now));
  CHECK_FALSE(jar.valid(proof, *endpoint::ip("::1", 40000), now));
  const endpoint v6 = *endpoint::ip("2001:db8::1", 40000);
  CHECK(jar.valid(jar.issue(v6, now), v6, now));
  CHECK_FALSE(jar.valid(jar.issue(v6, now), *endpoint::ip("2001:db8::2", 40000), now));
}

TEST_CASE("a UDP cookie expires, and cannot be forged, altered or zero", "[unit][files][udp]") {
  const cookie_jar jar;
  const auto now = clock::now();
  const endpoint client = *endpoint::ip("127.0.0.1", 40000);
  const auto proof = jar.issue(client, now);
  CHECK(jar.valid(proof, client, now + cookie_jar::lifetime));
  CHECK_FALSE(jar.valid(proof, client, now + cookie_jar::lifetime + 2s));
  CHECK_FALSE(jar.valid(proof, client, now - 2s));  // issued in the future
  CHECK_FALSE(jar.valid({}, client, now));
  CHECK_FALSE(cookie_jar().valid(proof, client, now));  // another server's secret
  for (std::size_t i = 0; i < proof.size(); ++i) {
    auto altered = proof;
    altered[i] ^= std::byte{1};
    INFO("byte " << i);
    CHECK_FALSE(jar.valid(altered, client, now));
  }
}
