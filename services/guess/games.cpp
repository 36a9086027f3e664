#include "games.hpp"

#include <variant>

namespace switchboard::services::guess {
secret_source::secret_source(std::optional<std::uint64_t> seed) {
  if (seed) seeded_.emplace(*seed);
}

std::uint64_t secret_source::draw(std::uint64_t max) {
  std::uniform_int_distribution<std::uint64_t> secret(1, max);
  return seeded_ ? secret(*seeded_) : secret(device_);
}

game_table::game_table(settings limits, secret_source& secrets, server_stats& stats)
    : limits_(limits), secrets_(secrets), stats_(stats), playing_per_host_(limits.max_games_per_host) {}

std::string game_table::reply(const endpoint& player, std::string_view datagram,
                              clock::time_point now) {
  expire(now);
  const guess_datagram request = read_datagram(datagram);
  if (request.what == guess_datagram::kind::greeting) return greeting(limits_.max);
  if (request.what == guess_datagram::kind::too_long) {
    return error_reply(bad_guess::too_long, limits_.max);
  }
  const auto parsed = parse_guess(request.line, limits_.max);
  if (const auto* why = std::get_if<bad_guess>(&parsed)) return error_reply(*why, limits_.max);
  const std::uint64_t guess = std::get<std::uint64_t>(parsed);

  auto found = by_player_.find(player);
  if (found != by_player_.end() && found->second->play.won() && !found->second->play.repeats(guess)) {
    forget(found);  // the player won and plays again
    found = by_player_.end();
  }
  entry_list::iterator game;
  if (found != by_player_.end()) {
    game = found->second;
  } else if (auto refused = refusal(player)) {
    ++stats_.rejected;
    return *refused;
  } else {
    game = start(player, now);
  }
  const bool was_playing = !game->play.won();
  std::string answer = game->play.answer(guess);
  touch(game, was_playing, now);
  return answer;
}

void game_table::expire(clock::time_point now) {
  if (limits_.game_timeout.count() == 0) return;
  for (entry_list* list : {&playing_, &finished_}) {
    while (!list->empty() && now - list->front().last_guess >= limits_.game_timeout) {
      if (list == &playing_) ++stats_.timed_out;
      forget(by_player_.find(list->front().player));
    }
  }
}

std::optional<std::string> game_table::refusal(const endpoint& player) {
  if (playing_per_host_.held_by(source_key::of(player)) >= limits_.max_games_per_host) {
    return "error: too many games from your address, try again later\n";
  }
  if (by_player_.size() >= limits_.max_games && !finished_.empty()) {
    forget(by_player_.find(finished_.front().player));
  }
  if (by_player_.size() >= limits_.max_games) return "error: too many games, try again later\n";
  return std::nullopt;
}

game_table::entry_list::iterator game_table::start(const endpoint& player, clock::time_point now) {
  playing_.push_back({player, game(secrets_.draw(limits_.max), limits_.max), now});
  const auto started = std::prev(playing_.end());
  by_player_.emplace(player, started);
  playing_per_host_.try_add(source_key::of(player));  // refusal() checked the cap
  ++stats_.total;
  stats_.open = playing_.size();
  return started;
}

void game_table::touch(entry_list::iterator game, bool was_playing, clock::time_point now) {
  game->last_guess = now;
  if (!game->play.won()) {
    playing_.splice(playing_.end(), playing_, game);
  } else if (!was_playing) {
    finished_.splice(finished_.end(), finished_, game);
  } else {
    finished_.splice(finished_.end(), playing_, game);
    release_host(game->player);
  }
}

void game_table::release_host(const endpoint& player) {
  playing_per_host_.remove(source_key::of(player));
  stats_.open = playing_.size();
}

void game_table::forget(player_map::iterator found) {
  const entry_list::iterator game = found->second;
  if (game->play.won()) {
    finished_.erase(game);
  } else {
    playing_.erase(game);
    release_host(found->first);
  }
  by_player_.erase(found);
}

}  // namespace switchboard::services::guess
