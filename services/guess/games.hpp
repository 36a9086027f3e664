// Where the guessing game's secrets come from, and the table of games a UDP
// server keeps between datagrams (bookkeeping only: no sockets, so that it
// can be tested with made-up addresses and clocks).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>

#include <switchboard/net.hpp>
#include <switchboard/time.hpp>

#include <switchboard/datagram_guard.hpp>
#include <switchboard/server.hpp>
#include <switchboard/source_key.hpp>
#include "protocol.hpp"

namespace switchboard::services::guess {

// Secrets from 1 to max: from a std::mt19937_64 seeded with `seed` (the same
// seed gives the same secrets in the same order), else from
// std::random_device, so that no secret can be derived from the time or
// from earlier games.
class secret_source {
 public:
  explicit secret_source(std::optional<std::uint64_t> seed);
  std::uint64_t draw(std::uint64_t max);

 private:
  std::optional<std::mt19937_64> seeded_;
  std::random_device device_;
};

// One game per client address (IP and port), started by its first guess. A
// new game starts with the first guess after "correct" that does not repeat
// the winning one (a retransmitted winning guess gets "correct" again).
//
// The table is bounded, so that a flood of spoofed sources leaves memory flat:
//  - a game without a guess for `game_timeout` expires;
//  - one host (an IPv4 address or an IPv6 /64, any port: see
//    common/source_key.hpp) plays at most `max_games_per_host` games at once,
//    so that a few addresses cannot take the whole table;
//  - at most `max_games` games are kept, finished ones included.
// Beyond a cap a new game is refused with an error, except that it may take
// the place of the longest-idle finished game: refusing keeps the games in
// progress safe from a flood, and the flood's own games expire.
class game_table {
 public:
  struct settings {
    std::uint64_t max = 100;
    milliseconds game_timeout = std::chrono::seconds(60);  // 0: never
    std::size_t max_games = 10'000;
    std::size_t max_games_per_host = 64;
  };

  // Counts in `stats`: open = games in progress, total = games started,
  // rejected = games refused, timed_out = games expired.
  game_table(settings limits, secret_source& secrets, server_stats& stats);

  // The reply to one datagram from `player`: the greeting for an empty one,
  // an error for one that is not a guess, else the answer in its game.
  std::string reply(const endpoint& player, std::string_view datagram,
                    clock::time_point now = clock::now());

  std::size_t playing() const noexcept { return playing_.size(); }
  std::size_t finished() const noexcept { return finished_.size(); }

 private:
  struct entry {
    endpoint player;
    game play;
    clock::time_point last_guess;
  };
  using entry_list = std::list<entry>;
  using player_map = std::unordered_map<endpoint, entry_list::iterator, endpoint_hash>;

  void expire(clock::time_point now);
  // Why `player` may not start a game now, after making room if it can.
  std::optional<std::string> refusal(const endpoint& player);
  entry_list::iterator start(const endpoint& player, clock::time_point now);
  // Moves a game that was just played to the end of its list (finished_
  // once won).
  void touch(entry_list::iterator game, bool was_playing, clock::time_point now);
  // A game of `player`'s host is no longer in progress.
  void release_host(const endpoint& player);
  void forget(player_map::iterator found);

  settings limits_;
  secret_source& secrets_;
  server_stats& stats_;
  entry_list playing_;   // least recently played first
  entry_list finished_;  // won, kept to answer a retransmitted winning guess
  player_map by_player_;
  source_counts playing_per_host_;
};

}  // namespace switchboard::services::guess
