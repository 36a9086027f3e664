// Port numbers as a user types them on the command line.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace switchboard {

// The port `text` names: decimal digits only (no sign, space, "0x" or
// trailing junk) with a value from 0 to 65535; nothing for anything else.
std::optional<std::uint16_t> parse_port(std::string_view text);

}  // namespace switchboard
