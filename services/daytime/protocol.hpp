// The daytime line (RFC 867) as pure functions of a time point, so that they
// can be unit-tested. The RFC leaves the form open and suggests
// "Weekday, Month Day, Year Time-Zone"; ours is, always in UTC,
//   Monday, November 2, 2026 23:04:23-UTC
// (the day not zero-padded) followed by CRLF.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace switchboard::services::daytime {

using system_seconds = std::chrono::sys_seconds;

// The line for `when` (to the second, in UTC), with its CRLF.
std::string daytime_line(std::chrono::system_clock::time_point when);

// The time point of a line in that form (its line end optional); nothing
// when `line` is not one or names no real date.
std::optional<system_seconds> parse_daytime_line(std::string_view line);

}  // namespace switchboard::services::daytime
