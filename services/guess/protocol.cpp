#include "protocol.hpp"

#include <algorithm>
#include <charconv>
#include <system_error>

#include <fmt/format.h>

namespace switchboard::services::guess {
namespace {

constexpr std::string_view greeting_prefix = "guess a number from 1 to ";

bool all_digits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// A whole decimal number, or nothing when `text` is not one or does not fit
// 64 bits (from_chars reports that instead of wrapping, and takes no sign
// or space into an unsigned value).
std::optional<std::uint64_t> decimal(std::string_view text) {
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace

std::string greeting(std::uint64_t max) { return fmt::format("{}{}\n", greeting_prefix, max); }

std::optional<std::uint64_t> parse_greeting(std::string_view line) {
  if (!line.starts_with(greeting_prefix)) return std::nullopt;
  auto max = decimal(line.substr(greeting_prefix.size()));
  if (!max || *max == 0) return std::nullopt;
  return max;
}

std::string error_reply(bad_guess why, std::uint64_t max) {
  switch (why) {
    case bad_guess::not_a_number:
      return "error: not a number\n";
    case bad_guess::out_of_range:
      return fmt::format("error: out of range, guess from 1 to {}\n", max);
    case bad_guess::too_long:
      break;
  }
  return fmt::format("error: line longer than {} bytes\n", max_line_length);
}

std::variant<std::uint64_t, bad_guess> parse_guess(std::string_view line, std::uint64_t max) {
  if (line.size() > max_line_length) return bad_guess::too_long;
  // A negative number is a number, just not one in the game.
  const bool negative = line.starts_with('-');
  if (!all_digits(negative ? line.substr(1) : line)) return bad_guess::not_a_number;
  if (negative) return bad_guess::out_of_range;
  const auto value = decimal(line);
  if (!value || *value < 1 || *value > max) return bad_guess::out_of_range;
  return *value;
}

guess_datagram read_datagram(std::string_view datagram) {
  if (datagram.empty()) return {guess_datagram::kind::greeting, {}};
  std::string_view line = datagram;
  if (line.ends_with('\n')) {
    line.remove_suffix(1);
    if (line.ends_with('\r')) line.remove_suffix(1);
  }
  if (line.size() > max_line_length) return {guess_datagram::kind::too_long, {}};
  return {guess_datagram::kind::line, line};
}

std::string game::answer(std::uint64_t guess) {
  if (!won_ && !repeats(guess)) {
    ++tries_;
    previous_ = guess;
    won_ = guess == secret_;
  }
  if (won_) return fmt::format("correct after {} tries\n", tries_);
  return *previous_ < secret_ ? "higher\n" : "lower\n";
}

std::string reply_to_line(game& g, std::string_view line) {
  const auto guess = parse_guess(line, g.max());
  if (const auto* why = std::get_if<bad_guess>(&guess)) return error_reply(*why, g.max());
  return g.answer(std::get<std::uint64_t>(guess));
}

}  // namespace switchboard::services::guess
