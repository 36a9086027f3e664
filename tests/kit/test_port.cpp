// Port numbers from the command line: what parse_port takes and refuses.
#include <catch2/catch.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <switchboard/port.hpp>

using switchboard::parse_port;

TEST_CASE("a port is decimal digits from 0 to 65535", "[port]") {
  CHECK(parse_port("0") == std::uint16_t{0});
  CHECK(parse_port("80") == std::uint16_t{80});
  CHECK(parse_port("65535") == std::uint16_t{65535});
  // Leading zeros change nothing, however many: "010" is ten, not octal.
  CHECK(parse_port("010") == std::uint16_t{10});
  CHECK(parse_port("00080") == std::uint16_t{80});
  CHECK(parse_port(std::string(100, '0') + "443") == std::uint16_t{443});
}

TEST_CASE("anything else is refused rather than cut, wrapped or trimmed", "[port]") {
  for (const std::string& text : std::vector<std::string>{"", "65536", "65616", "4294967376", std::string(200, '9'), "-1", "-0",
                                 "+80", " 80", "80 ", "80x", "0x50", "8 0", "80\n", std::string("8\0" "0", 3),
                                 "1e3", "80.0", "٨٠"}) {
    INFO("'" << text << "'");
    CHECK(parse_port(text) == std::nullopt);
  }
}

TEST_CASE("every port prints back as itself", "[port]") {
  for (std::uint32_t port = 0; port <= 65535; ++port) {
    if (parse_port(std::to_string(port)) != static_cast<std::uint16_t>(port)) FAIL("port " << port);
  }
}
