// libFuzzer harness for the command-line port parser
// (kit/src/port.cpp), which every --port and --listen-port of the
// services and udp-relay's --target go through: the input is the text the
// user typed.
//
// Invariants: a port is accepted exactly when the text is one or more
// decimal digits whose value, leading zeros aside, is at most 65535 (checked
// here on the digits as text, not by converting them); an accepted port
// prints back as those digits and parses again to itself.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <switchboard/port.hpp>

using switchboard::parse_port;

namespace {

void require(bool invariant) {
  if (!invariant) __builtin_trap();
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Whether decimal digits `digits` (no leading zeros) are at most 65535.
bool fits(std::string_view digits) {
  return digits.size() < 5 || (digits.size() == 5 && digits <= "65535");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto port = parse_port(text);

  const bool all_digits = !text.empty() && std::all_of(text.begin(), text.end(), is_digit);
  std::string_view significant = text.substr(std::min(text.find_first_not_of('0'), text.size()));
  require(port.has_value() == (all_digits && fits(significant)));
  if (!port) return 0;

  const std::string printed = std::to_string(*port);
  require(printed == (significant.empty() ? "0" : significant));
  require(parse_port(printed) == port);
  return 0;
}
