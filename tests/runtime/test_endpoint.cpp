#include <catch2/catch.hpp>

#include <string>

#include <fmt/format.h>
#include <switchboard/fmt.hpp>
#include <switchboard/net.hpp>
#include <switchboard/runtime.hpp>

using namespace switchboard;

TEST_CASE("endpoints print as host:port, [v6]:port and unix:path", "[unit][endpoint]") {
  CHECK(fmt::format("{}", *endpoint::ip("127.0.0.1", 7007)) == "127.0.0.1:7007");
  CHECK(fmt::format("{}", *endpoint::ip("::1", 7007)) == "[::1]:7007");
  CHECK(fmt::format("{}", *endpoint::ip("[::1]", 80)) == "[::1]:80");
  CHECK(fmt::format("{}", *endpoint::unix_path("/tmp/x.sock")) == "unix:/tmp/x.sock");
  CHECK(endpoint::unix_path("/tmp/x.sock")->path() == "/tmp/x.sock");
}

TEST_CASE("a name is not a numeric endpoint", "[unit][endpoint]") {
  CHECK_FALSE(endpoint::ip("localhost", 1));
  CHECK_FALSE(endpoint::ip("300.1.1.1", 1));
}

TEST_CASE("a Unix path longer than sun_path is refused, not truncated", "[unit][endpoint]") {
  auto too_long = endpoint::unix_path(std::string(200, 'x'));
  REQUIRE_FALSE(too_long);
  CHECK(too_long.error() == std::errc::filename_too_long);
  CHECK(endpoint::unix_path(std::string(107, 'x')));
}

TEST_CASE("resolving localhost gives loopback addresses", "[unit][endpoint]") {
  auto all = resolve("localhost", 9);
  REQUIRE(all);
  REQUIRE_FALSE(all->empty());
  for (const endpoint& ep : *all) {
    CHECK(ep.port() == 9);
    CHECK((ep.to_string() == "127.0.0.1:9" || ep.to_string() == "[::1]:9"));
  }
}

TEST_CASE("backend names parse, io_uring included", "[unit][backend]") {
  CHECK(parse_backend("select") == backend_kind::select);
  CHECK(parse_backend("epoll") == backend_kind::epoll);
  CHECK(parse_backend("uring") == backend_kind::uring);
  CHECK(parse_backend("io_uring") == backend_kind::uring);
  CHECK_FALSE(parse_backend("kqueue"));
  CHECK_FALSE(probe_backend(backend_kind::select));
}
