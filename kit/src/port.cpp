#include "switchboard/port.hpp"

#include <charconv>

namespace switchboard {

std::optional<std::uint16_t> parse_port(std::string_view text) {
  // For an unsigned type from_chars takes digits only: no sign, no leading
  // space, no "0x"; it reports a value over 65535 rather than wrapping. It
  // stops at the first non-digit, so all of `text` must have been used.
  std::uint16_t port = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (error != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return port;
}

}  // namespace switchboard
