#include "protocol.hpp"

#include <array>
#include <charconv>

#include <fmt/core.h>

namespace switchboard::services::daytime {
namespace {

using namespace std::chrono;

constexpr std::array<std::string_view, 7> weekdays{"Sunday",   "Monday", "Tuesday", "Wednesday",
                                                   "Thursday", "Friday", "Saturday"};
constexpr std::array<std::string_view, 12> months{
    "January", "February", "March",     "April",   "May",      "June",
    "July",    "August",   "September", "October", "November", "December"};

// Reads the word of `names` that `text` starts with, and what follows it.
template <std::size_t N>
std::optional<unsigned> take_name(std::string_view& text, const std::array<std::string_view, N>& names) {
  for (unsigned i = 0; i < N; ++i) {
    if (text.starts_with(names[i])) {
      text.remove_prefix(names[i].size());
      return i;
    }
  }
  return std::nullopt;
}

// Reads a decimal number of 1 to `max_digits` digits.
std::optional<int> take_number(std::string_view& text, std::size_t min_digits, std::size_t max_digits) {
  std::size_t digits = 0;
  while (digits < text.size() && digits < max_digits && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits < min_digits) return std::nullopt;
  int value = 0;
  std::from_chars(text.data(), text.data() + digits, value);
  text.remove_prefix(digits);
  return value;
}

bool take(std::string_view& text, std::string_view literal) {
  if (!text.starts_with(literal)) return false;
  text.remove_prefix(literal.size());
  return true;
}

}  // namespace

std::string daytime_line(system_clock::time_point when) {
  const auto to_second = floor<seconds>(when);
  const auto midnight = floor<days>(to_second);
  const year_month_day date{midnight};
  const hh_mm_ss time{to_second - midnight};
  return fmt::format("{}, {} {}, {:04} {:02}:{:02}:{:02}-UTC\r\n",
                     weekdays[weekday{midnight}.c_encoding()],
                     months[static_cast<unsigned>(date.month()) - 1], static_cast<unsigned>(date.day()),
                     static_cast<int>(date.year()), time.hours().count(), time.minutes().count(),
                     time.seconds().count());
}

std::optional<system_seconds> parse_daytime_line(std::string_view line) {
  if (line.ends_with("\r\n")) {
    line.remove_suffix(2);
  } else if (line.ends_with('\n')) {
    line.remove_suffix(1);
  }
  const auto weekday_index = take_name(line, weekdays);
  if (!weekday_index || !take(line, ", ")) return std::nullopt;
  const auto month_index = take_name(line, months);
  if (!month_index || !take(line, " ")) return std::nullopt;
  if (line.starts_with('0')) return std::nullopt;  // the day is not zero-padded
  const auto day_number = take_number(line, 1, 2);
  if (!day_number || !take(line, ", ")) return std::nullopt;
  const auto year_number = take_number(line, 4, 4);
  if (!year_number || !take(line, " ")) return std::nullopt;
  const auto hour = take_number(line, 2, 2);
  if (!hour || !take(line, ":")) return std::nullopt;
  const auto minute = take_number(line, 2, 2);
  if (!minute || !take(line, ":")) return std::nullopt;
  const auto second = take_number(line, 2, 2);
  if (!second || line != "-UTC") return std::nullopt;
  const year_month_day date{year{*year_number}, month{*month_index + 1},
                            day{static_cast<unsigned>(*day_number)}};
  if (!date.ok() || *hour > 23 || *minute > 59 || *second > 59) return std::nullopt;
  const sys_days midnight{date};
  if (weekday{midnight}.c_encoding() != *weekday_index) return std::nullopt;
  return midnight + hours{*hour} + minutes{*minute} + seconds{*second};
}

}  // namespace switchboard::services::daytime
