// The guessing game's pure parts: line framing, guess parsing, the game's
// rules and the UDP game table, without sockets.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <variant>
#include <vector>

#include "guess/games.hpp"
#include "guess/protocol.hpp"

using namespace switchboard;
using namespace switchboard::services;
using namespace switchboard::services::guess;
using namespace std::chrono_literals;

namespace {

std::variant<std::uint64_t, bad_guess> parsed(std::string_view line) { return parse_guess(line, 100); }

endpoint player(std::uint16_t port, const char* host = "127.0.0.1") { return *endpoint::ip(host, port); }

// The number a fresh seeded source gives first: the secret of the first game.
std::uint64_t first_secret(std::uint64_t seed, std::uint64_t max) {
  return secret_source(seed).draw(max);
}

}  // namespace

TEST_CASE("a guess is decimal digits from 1 to max and nothing else", "[unit][guess]") {
  CHECK(parsed("1") == std::variant<std::uint64_t, bad_guess>(std::uint64_t{1}));
  CHECK(parsed("100") == std::variant<std::uint64_t, bad_guess>(std::uint64_t{100}));
  CHECK(parsed("007") == std::variant<std::uint64_t, bad_guess>(std::uint64_t{7}));
  for (const char* not_a_number : {"", "abc", "42abc", "4 2", " 42", "42 ", "+42", "-", "-x", "0x10",
                                   "1e3", "42\r", "\t42"}) {
    INFO("'" << not_a_number << "'");
    CHECK(parsed(not_a_number) == std::variant<std::uint64_t, bad_guess>(bad_guess::not_a_number));
  }
  for (const char* out_of_range : {"0", "101", "-1", "-0", "18446744073709551615",
                                   "99999999999999999999", "18446744073709551616"}) {
    INFO(out_of_range);
    CHECK(parsed(out_of_range) == std::variant<std::uint64_t, bad_guess>(bad_guess::out_of_range));
  }
  CHECK(parsed(std::string_view("4\0" "2", 3)) ==
        std::variant<std::uint64_t, bad_guess>(bad_guess::not_a_number));
  CHECK(parsed(std::string(65, '1')) == std::variant<std::uint64_t, bad_guess>(bad_guess::too_long));
  // 64 digits are a number, just far out of range.
  CHECK(parsed(std::string(64, '9')) == std::variant<std::uint64_t, bad_guess>(bad_guess::out_of_range));
  CHECK(parse_guess("18446744073709551615", UINT64_MAX) ==
        std::variant<std::uint64_t, bad_guess>(UINT64_MAX));
}

TEST_CASE("error replies say what was wrong in one line", "[unit][guess]") {
  CHECK(error_reply(bad_guess::not_a_number, 100) == "error: not a number\n");
  CHECK(error_reply(bad_guess::out_of_range, 100) == "error: out of range, guess from 1 to 100\n");
  CHECK(error_reply(bad_guess::too_long, 100) == "error: line longer than 64 bytes\n");
}

TEST_CASE("the greeting names the range and the client reads N back from it", "[unit][guess]") {
  CHECK(greeting(100) == "guess a number from 1 to 100\n");
  CHECK(parse_greeting("guess a number from 1 to 100") == std::uint64_t{100});
  CHECK(parse_greeting("guess a number from 1 to 18446744073709551615") == UINT64_MAX);
  for (const char* not_one : {"", "higher", "guess a number from 1 to ", "guess a number from 1 to 0",
                              "guess a number from 1 to 10x", "guess a number from 1 to 99999999999999999999"}) {
    INFO(not_one);
    CHECK_FALSE(parse_greeting(not_one));
  }
}

TEST_CASE("a datagram is one line, its line end optional; an empty one asks for the greeting",
          "[unit][guess]") {
  CHECK(read_datagram("").what == guess_datagram::kind::greeting);
  for (const char* with_end : {"42", "42\n", "42\r\n"}) {
    auto request = read_datagram(with_end);
    CHECK(request.what == guess_datagram::kind::line);
    CHECK(request.line == "42");
  }
  // A CR without its LF is not a line end.
  CHECK(read_datagram("42\r").line == "42\r");
  CHECK(read_datagram("\n").line.empty());
  CHECK(read_datagram(std::string(64, '1') + "\r\n").what == guess_datagram::kind::line);
  CHECK(read_datagram(std::string(65, '1')).what == guess_datagram::kind::too_long);
}

TEST_CASE("a game answers higher, lower and correct, counting each guess once", "[unit][guess]") {
  game play(37, 100);
  CHECK(play.answer(50) == "lower\n");
  CHECK(play.answer(25) == "higher\n");
  CHECK(play.tries() == 2);
  CHECK_FALSE(play.won());
  CHECK(play.answer(37) == "correct after 3 tries\n");
  CHECK(play.won());
  CHECK(play.tries() == 3);
}

TEST_CASE("a repeated guess gets the same reply and is not counted again", "[unit][guess]") {
  game play(37, 100);
  CHECK(play.answer(50) == "lower\n");
  CHECK(play.repeats(50));
  CHECK(play.answer(50) == "lower\n");
  CHECK(play.tries() == 1);
  CHECK(play.answer(37) == "correct after 2 tries\n");
  CHECK(play.answer(37) == "correct after 2 tries\n");
  // Once won the game is over: whatever comes gets the winning reply.
  CHECK(play.answer(12) == "correct after 2 tries\n");
  CHECK(play.tries() == 2);
}

TEST_CASE("lines that are not guesses get errors and are not counted", "[unit][guess]") {
  game play(1, 1);
  for (const char* bad : {"abc", "42abc", "", "0", "2", "-1", "99999999999999999999"}) {
    INFO(bad);
    CHECK(reply_to_line(play, bad).starts_with("error: "));
  }
  CHECK(play.tries() == 0);
  CHECK(reply_to_line(play, "1") == "correct after 1 tries\n");
}

TEST_CASE("the same seed gives the same secrets in the same order", "[unit][guess]") {
  secret_source a(42), b(42);
  std::vector<std::uint64_t> from_a, from_b;
  for (int i = 0; i < 100; ++i) {
    from_a.push_back(a.draw(1000));
    from_b.push_back(b.draw(1000));
  }
  CHECK(from_a == from_b);
  for (std::uint64_t secret : from_a) CHECK((secret >= 1 && secret <= 1000));
  // Not one secret over and over: consecutive games differ.
  CHECK(std::count(from_a.begin(), from_a.end(), from_a.front()) < 10);
  secret_source device(std::nullopt);
  for (int i = 0; i < 100; ++i) {
    const auto secret = device.draw(6);
    CHECK((secret >= 1 && secret <= 6));
  }
  CHECK(secret_source(std::nullopt).draw(1) == 1);
}

namespace {

struct table_fixture {
  server_stats stats;
  secret_source secrets{7};
  game_table table;
  clock::time_point t0 = clock::now();

  explicit table_fixture(game_table::settings limits) : table(limits, secrets, stats) {}

  // Plays a whole game for `from` by binary search; the number of guesses.
  std::uint64_t win(const endpoint& from, clock::time_point now) {
    std::uint64_t low = 1, high = 100;
    for (std::uint64_t tries = 1; tries <= 10; ++tries) {
      const std::uint64_t guess = (low + high) / 2;
      const std::string reply = table.reply(from, std::to_string(guess), now);
      if (reply == "higher\n") {
        low = guess + 1;
      } else if (reply == "lower\n") {
        high = guess - 1;
      } else {
        REQUIRE(reply == "correct after " + std::to_string(tries) + " tries\n");
        return tries;
      }
    }
    FAIL("binary search did not finish");
    return 0;
  }
};

}  // namespace

TEST_CASE("the UDP table keeps one game per address and greets without keeping state",
          "[unit][guess][udp]") {
  table_fixture f({.max = 100});
  CHECK(f.table.reply(player(40000), "", f.t0) == "guess a number from 1 to 100\n");
  CHECK(f.table.reply(player(40000), "abc\n", f.t0) == "error: not a number\n");
  CHECK(f.table.reply(player(40000), std::string(100, '5'), f.t0) == "error: line longer than 64 bytes\n");
  CHECK(f.table.playing() == 0);
  CHECK(f.stats.total == 0);
  f.table.reply(player(40000), "50", f.t0);
  f.table.reply(player(40001), "50", f.t0);
  CHECK(f.table.playing() == 2);
  CHECK(f.stats.total == 2);
  CHECK(f.stats.open == 2);
  CHECK(f.win(player(40002), f.t0) >= 1);
  CHECK(f.table.playing() == 2);
  CHECK(f.table.finished() == 1);
}

TEST_CASE("the UDP table answers a retransmitted guess without counting it", "[unit][guess][udp]") {
  table_fixture f({.max = 100});
  const std::string first = f.table.reply(player(40000), "50\n", f.t0);
  CHECK(f.table.reply(player(40000), "50\n", f.t0) == first);
  CHECK(f.table.reply(player(40000), "50", f.t0) == first);
  // The game goes on from one counted guess: binary search from here wins
  // in as many guesses as it makes, the repeated 50 being its first.
  const std::uint64_t tries = f.win(player(40000), f.t0);
  // A retransmitted winning guess gets "correct" again...
  const std::uint64_t secret = first_secret(7, 100);
  const std::string won = "correct after " + std::to_string(tries) + " tries\n";
  CHECK(f.table.reply(player(40000), std::to_string(secret), f.t0) == won);
  CHECK(f.stats.total == 1);
  // ...while another guess starts a new game.
  const std::string next = f.table.reply(player(40000), secret == 1 ? "2" : "1", f.t0);
  CHECK(next != won);
  CHECK(f.stats.total == 2);
}

TEST_CASE("UDP games without a guess for the game timeout expire", "[unit][guess][udp]") {
  table_fixture f({.max = 100, .game_timeout = 60s});
  f.table.reply(player(40000), "50", f.t0);
  f.table.reply(player(40001), "50", f.t0 + 30s);
  f.table.reply(player(40001), "", f.t0 + 59s);  // a greeting is not a guess
  f.table.reply(player(40002), "", f.t0 + 60s);
  CHECK(f.table.playing() == 1);
  CHECK(f.stats.timed_out == 1);
  f.table.reply(player(40002), "", f.t0 + 90s);
  CHECK(f.table.playing() == 0);
  CHECK(f.stats.timed_out == 2);
  CHECK(f.stats.open == 0);
}

TEST_CASE("one host's games in progress are capped and more are refused", "[unit][guess][udp]") {
  table_fixture f({.max = 100, .max_games_per_host = 3});
  for (std::uint16_t port = 40000; port < 40003; ++port) {
    CHECK_FALSE(f.table.reply(player(port), "50", f.t0).starts_with("error"));
  }
  CHECK(f.table.reply(player(40003), "50", f.t0) ==
        "error: too many games from your address, try again later\n");
  CHECK(f.stats.rejected == 1);
  // Games already running go on, and other hosts still get games.
  CHECK_FALSE(f.table.reply(player(40000), "51", f.t0).starts_with("error"));
  CHECK_FALSE(f.table.reply(player(40000, "127.0.0.2"), "50", f.t0).starts_with("error"));
  // A won game is no longer in progress: its host may start another.
  f.win(player(40001), f.t0);
  CHECK_FALSE(f.table.reply(player(40003), "50", f.t0).starts_with("error"));
}

TEST_CASE("every address of one IPv6 /64 is one host, and shares its cap", "[unit][guess][udp]") {
  table_fixture f({.max = 100, .max_games_per_host = 3});
  // A host picks any of its 2^64 addresses: a cap per address would cap nothing.
  for (const char* address : {"2001:db8:0:1::1", "2001:db8:0:1::2", "2001:db8:0:1:ffff::3"}) {
    CHECK_FALSE(f.table.reply(player(40000, address), "50", f.t0).starts_with("error"));
  }
  CHECK(f.table.reply(player(40000, "2001:db8:0:1::4"), "50", f.t0) ==
        "error: too many games from your address, try again later\n");
  // The next /64 is another host.
  CHECK_FALSE(f.table.reply(player(40000, "2001:db8:0:2::1"), "50", f.t0).starts_with("error"));
  CHECK(f.table.playing() == 4);
}

TEST_CASE("the UDP table holds at most max games; finished ones give way first", "[unit][guess][udp]") {
  table_fixture f({.max = 100, .max_games = 3});
  f.win(player(40000), f.t0);
  f.table.reply(player(40001), "50", f.t0);
  f.table.reply(player(40002), "50", f.t0);
  CHECK(f.table.finished() == 1);
  // The finished game makes room for a new one...
  CHECK_FALSE(f.table.reply(player(40003), "50", f.t0).starts_with("error"));
  CHECK(f.table.finished() == 0);
  // ...but games in progress are never pushed out.
  CHECK(f.table.reply(player(40004), "50", f.t0) == "error: too many games, try again later\n");
  CHECK(f.table.playing() == 3);
  CHECK(f.stats.rejected == 1);
  // A spoofed flood from many sources leaves the table at its cap.
  for (std::uint16_t port = 41000; port < 43000; ++port) f.table.reply(player(port), "50", f.t0);
  CHECK(f.table.playing() == 3);
  CHECK(f.stats.rejected == 2001);
  // Once the flood's games expire there is room again.
  CHECK_FALSE(f.table.reply(player(40004), "50", f.t0 + 61s).starts_with("error"));
}
