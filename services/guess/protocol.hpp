// The guessing game's wire format and rules, as pure functions over bytes
// (no sockets, no runtime), so that they can be fuzzed and unit-tested.
//
// Every reply is one line ending in LF: the greeting "guess a number from 1
// to N", "higher", "lower", "correct after K tries", or "error: ...". A
// guess is a line of decimal digits only (no sign, no spaces), at most 64
// bytes before its LF or CRLF.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace switchboard::services::guess {

// The longest line a player may send, not counting its line end.
inline constexpr std::size_t max_line_length = 64;

// "guess a number from 1 to N\n".
std::string greeting(std::uint64_t max);

// N from a greeting line (without its LF), or nothing when `line` is not one.
std::optional<std::uint64_t> parse_greeting(std::string_view line);

// Why a line is not a guess; each has its own "error: ..." reply.
enum class bad_guess { not_a_number, out_of_range, too_long };

// The "error: ...\n" reply for `why` in a game from 1 to `max`.
std::string error_reply(bad_guess why, std::uint64_t max);

// A guess from 1 to `max` out of one line (its line end removed): digits only, so " 42", "+42" and "42abc"
// are not numbers, while "-1", "0", N+1 and numbers past 2^64 are out of range.
std::variant<std::uint64_t, bad_guess> parse_guess(std::string_view line, std::uint64_t max);

// What one UDP datagram asks for: the greeting (an empty datagram), or the
// answer to the line it carries (an LF or CRLF at its end is optional).
struct guess_datagram {
  enum class kind { greeting, line, too_long };
  kind what = kind::greeting;
  std::string_view line;  // the line, without its line end
};
guess_datagram read_datagram(std::string_view datagram);

// One game: a secret from 1 to max, and the guesses counted so far.
//
// A guess equal to the previous one is answered again without counting: a
// UDP client retransmits a guess whose reply was lost, and the server cannot
// tell a retransmission from a player who repeats himself, so the repeat
// must be harmless. Once won, every guess gets the winning reply again.
class game {
 public:
  game(std::uint64_t secret, std::uint64_t max) noexcept : secret_(secret), max_(max) {}

  // "higher\n", "lower\n" or "correct after K tries\n" for a guess from 1 to max.
  std::string answer(std::uint64_t guess);
  // True when `guess` repeats the previous guess and would not be counted.
  bool repeats(std::uint64_t guess) const noexcept { return previous_ == guess; }

  bool won() const noexcept { return won_; }
  std::uint64_t tries() const noexcept { return tries_; }
  std::uint64_t max() const noexcept { return max_; }

 private:
  std::uint64_t secret_;
  std::uint64_t max_;
  std::uint64_t tries_ = 0;
  std::optional<std::uint64_t> previous_;
  bool won_ = false;
};

// The reply to one line of a game: an error for a line that is not a guess
// from 1 to max (not counted), else the game's answer.
std::string reply_to_line(game& g, std::string_view line);

}  // namespace switchboard::services::guess
