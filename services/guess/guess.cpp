#include "guess.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <switchboard/cancel.hpp>
#include <switchboard/net.hpp>
#include <switchboard/reader.hpp>
#include <switchboard/time.hpp>

#include <switchboard/log.hpp>
#include "protocol.hpp"

namespace switchboard::services::guess {
namespace {

// The largest datagram either side takes: the server drops a larger one
// unread and answers a line longer than max_line_length in a smaller one as
// too long.
constexpr std::size_t max_datagram_size = 512;
static_assert(max_datagram_size > max_line_length + 2);

// The longest server line the client takes (ours are far shorter), and the
// longest line a player may type.
constexpr std::size_t max_reply_length = 200;
constexpr std::size_t max_input_length = 64 * 1024;

std::string_view as_text(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// What the client reports when the server ends the connection before a reply.
std::error_code closed_by_server() { return std::make_error_code(std::errc::connection_aborted); }

std::string describe(std::error_code error) {
  if (error == closed_by_server()) return "the server closed the connection";
  return error.message();
}

// Prints one line of the game on stdout at once: a player is watching.
void say(std::string_view line) {
  fmt::print("{}\n", line);
  std::fflush(stdout);
}

// How a client talks to the server: one line out, one line back.
class channel {
 public:
  virtual ~channel() = default;
  // The greeting line, without its LF.
  virtual task<result<std::string>> greeting() = 0;
  // Sends `line` (without its LF) and returns the reply line, without its LF.
  virtual task<result<std::string>> ask(std::string line) = 0;
};

class stream_channel final : public channel {
 public:
  explicit stream_channel(stream server) : server_(std::move(server)) {}

  task<result<std::string>> greeting() override { return read_line(); }

  task<result<std::string>> ask(std::string line) override {
    line += '\n';
    if (auto sent = co_await server_.write_all(line); !sent) co_return sent.error();
    co_return co_await read_line();
  }

 private:
  task<result<std::string>> read_line() {
    auto line = co_await input_.read_line(max_reply_length);
    if (line) co_return std::string(*line);
    const std::error_code error = line.error();
    if (error == read_errc::too_long) co_return std::make_error_code(std::errc::message_size);
    if (error == read_errc::end_of_stream || error == read_errc::truncated) co_return closed_by_server();
    co_return error;
  }

  stream server_;
  reader<stream> input_{server_};
};

// A guess goes out again after each try timeout without a reply. The server
// answers a repeated guess without counting it, so a retransmission is
// harmless there; here, the replies to the retransmissions of a guess that
// was answered already are discarded before the next guess, since a reply
// does not say which guess it answers.
class datagram_channel final : public channel {
 public:
  datagram_channel(datagram_socket socket, endpoint server, milliseconds try_timeout)
      : socket_(std::move(socket)), server_(std::move(server)), try_timeout_(try_timeout) {}

  // An empty datagram asks for the greeting.
  task<result<std::string>> greeting() override { return exchange({}); }

  task<result<std::string>> ask(std::string line) override {
    line += '\n';
    return exchange(std::move(line));
  }

 private:
  task<result<std::string>> exchange(std::string payload) {
    const auto first_sent = clock::now();
    for (int sent = 1;; ++sent) {
      if (auto out = co_await socket_.send_to(as_bytes(payload), server_); !out) {
        co_return out.error();
      }
      auto reply = co_await receive_reply(clock::now() + try_timeout_);
      if (reply) {
        // The copy sent last left at most this long before the reply came, so
        // its own reply is due within about as long again.
        const auto window = std::max<clock::duration>(try_timeout_, clock::now() - first_sent);
        co_await discard_replies(sent - 1, window);
        co_return reply;
      }
      if (reply.error() != std::errc::timed_out) co_return reply.error();
    }
  }

  // The next datagram from the server before `deadline`, without its LF.
  task<result<std::string>> receive_reply(clock::time_point deadline) {
    for (;;) {
      auto got = co_await with_deadline(deadline, socket_.receive_from(buffer_));
      if (!got) co_return got.error();
      if (!(got->from == server_)) continue;  // a stray datagram, not a reply
      std::string_view text = as_text(std::span(buffer_).first(got->size));
      if (text.ends_with('\n')) text.remove_suffix(1);
      co_return std::string(text);
    }
  }

  // Waits `window` at most for `count` late replies and drops them.
  task<void> discard_replies(int count, clock::duration window) {
    const auto deadline = clock::now() + window;
    for (int i = 0; i < count; ++i) {
      auto late = co_await receive_reply(deadline);
      if (!late) co_return;
    }
  }

  datagram_socket socket_;
  endpoint server_;
  milliseconds try_timeout_;
  std::array<std::byte, max_datagram_size> buffer_;
};

task<result<std::unique_ptr<channel>>> open_channel(const client_options& options) {
  if (!options.udp) {
    auto conn = co_await connect_to_server(options);
    if (!conn) co_return conn.error();
    co_return std::unique_ptr<channel>(std::make_unique<stream_channel>(std::move(*conn)));
  }
  auto servers = resolve(options.host, options.port);
  if (!servers) co_return servers.error();
  const endpoint server = servers->front();
  auto socket = datagram_socket::open(server.family());
  if (!socket) co_return socket.error();
  co_return std::unique_ptr<channel>(
      std::make_unique<datagram_channel>(std::move(*socket), server, options.try_timeout));
}

// How long the client waits for each reply (and to connect).
clock::duration reply_timeout(const client_options& options) {
  return std::chrono::duration_cast<clock::duration>(
      std::chrono::duration<double>(options.timeout_seconds));
}

// Plays one game by binary search; the number of tries it took.
task<result<std::uint64_t>> play_by_binary_search(channel& server, clock::duration timeout,
                                                  bool print) {
  auto hello = co_await with_timeout(timeout, server.greeting());
  if (!hello) co_return hello.error();
  if (print) say(*hello);
  const auto max = parse_greeting(*hello);
  if (!max) {
    log("guess-client: not a greeting: '{}'", *hello);
    co_return std::make_error_code(std::errc::bad_message);
  }
  std::uint64_t low = 1;
  std::uint64_t high = *max;
  for (std::uint64_t tries = 1;; ++tries) {
    const std::uint64_t guess = low + (high - low) / 2;
    if (print) say(fmt::format("> {}", guess));
    auto reply = co_await with_timeout(timeout, server.ask(std::to_string(guess)));
    if (!reply) co_return reply.error();
    if (print) say(*reply);
    if (*reply == "higher" && guess < high) {
      low = guess + 1;
    } else if (*reply == "lower" && guess > low) {
      high = guess - 1;
    } else if (reply->starts_with("correct")) {
      co_return tries;
    } else {
      log("guess-client: unexpected reply to {}: '{}'", guess, *reply);
      co_return std::make_error_code(std::errc::bad_message);
    }
  }
}

struct tally {
  std::size_t won = 0;
  std::size_t failed = 0;
  std::uint64_t tries = 0;
};

task<void> play_one_game(const client_options& options, std::size_t index, tally& results) {
  const bool print = options.games == 1;
  auto server = co_await with_timeout(reply_timeout(options), open_channel(options));
  if (!server) {
    if (results.failed++ == 0) log("guess-client: connect: {}", describe(server.error()));
    co_return;
  }
  auto tries = co_await play_by_binary_search(**server, reply_timeout(options), print);
  if (!tries) {
    if (results.failed++ == 0) log("guess-client: game #{}: {}", index, describe(tries.error()));
    co_return;
  }
  ++results.won;
  results.tries += *tries;
  if (print) say(fmt::format("won in {} tries", *tries));
}

task<int> play_by_itself(const client_options& options) {
  tally results;
  task_group games(co_await this_scope());
  for (std::size_t i = 0; i < options.games; ++i) {
    games.spawn(play_one_game(options, i, results), fmt::format("guess-client game #{}", i));
  }
  co_await games.join();
  if (results.failed > 0) {
    log("guess-client: {} of {} games failed", results.failed, options.games);
    co_return exit_failure;
  }
  if (options.games > 1) say(fmt::format("won {} games in {} tries", results.won, results.tries));
  co_return 0;
}

// Lines of standard input, read through the loop so that waiting for the
// player blocks nothing else.
class input_lines {
 public:
  // The next line without its LF; nothing at the end of the input.
  task<result<std::optional<std::string>>> next() {
    for (;;) {
      if (const auto lf = pending_.find('\n'); lf != std::string::npos) {
        std::string line = pending_.substr(0, lf);
        pending_.erase(0, lf + 1);
        co_return std::optional(std::move(line));
      }
      if (ended_) {
        if (pending_.empty()) co_return std::optional<std::string>();
        co_return std::optional(std::exchange(pending_, {}));
      }
      if (pending_.size() > max_input_length) co_return std::make_error_code(std::errc::message_size);
      if (auto ready = co_await wait_ready(STDIN_FILENO, POLLIN); !ready) co_return ready.error();
      std::array<char, 4096> chunk;
      const ssize_t n = ::read(STDIN_FILENO, chunk.data(), chunk.size());
      if (n < 0 && errno != EAGAIN && errno != EINTR) co_return errno_code(errno);
      if (n == 0) ended_ = true;
      if (n > 0) pending_.append(chunk.data(), static_cast<std::size_t>(n));
    }
  }

 private:
  std::string pending_;
  bool ended_ = false;
};

task<int> play_from_stdin(const client_options& options) {
  const clock::duration timeout = reply_timeout(options);
  auto server = co_await with_timeout(timeout, open_channel(options));
  if (!server) {
    log("guess-client: connect: {}", describe(server.error()));
    co_return exit_failure;
  }
  auto hello = co_await with_timeout(timeout, (*server)->greeting());
  if (!hello) {
    log("guess-client: {}", describe(hello.error()));
    co_return exit_failure;
  }
  say(*hello);
  input_lines input;
  for (;;) {
    auto line = co_await input.next();
    if (!line) {
      log("guess-client: standard input: {}", line.error().message());
      co_return exit_failure;
    }
    if (!*line) {
      log("guess-client: the input ended before the game was won");
      co_return exit_failure;
    }
    auto reply = co_await with_timeout(timeout, (*server)->ask(std::move(**line)));
    if (!reply) {
      log("guess-client: {}", describe(reply.error()));
      co_return exit_failure;
    }
    say(*reply);
    if (reply->starts_with("correct")) co_return 0;
  }
}

}  // namespace

task<void> session(connection& conn, std::uint64_t max, secret_source& secrets) {
  const std::uint64_t secret = secrets.draw(max);
  game play(secret, max);
  const std::string hello = greeting(max);
  if (auto sent = co_await conn.write_all(hello); !sent) co_return;
  for (;;) {
    auto line = co_await conn.read_line(max_line_length);
    if (!line) {
      if (line.error() != read_errc::too_long) co_return;  // EOF, reset or a timeout: close
      const std::string refusal = error_reply(bad_guess::too_long, max);
      (void)co_await conn.write_all(refusal);
      co_return;
    }
    const std::string reply = reply_to_line(play, *line);
    if (auto sent = co_await conn.write_all(reply); !sent) co_return;
    if (play.won()) co_return;
  }
}

task<int> serve(server_state& server, const server_settings& settings) {
  secret_source secrets(settings.seed);
  if (settings.udp) {
    // The kit's guard has passed each guess before the table sees it: a
    // guess whose reply would be dropped is not counted, and its
    // retransmission will be.
    game_table table(settings.games, secrets, server.stats);
    const request_fn play = [&table](datagram_request& guess) -> task<void> {
      co_await guess.reply(table.reply(guess.from(), guess.text()));
    };
    co_return co_await serve_each_datagram(server, max_datagram_size, play);
  }
  const std::uint64_t max = settings.games.max;
  const session_fn one_game = [max, &secrets](connection& conn) { return session(conn, max, secrets); };
  co_return co_await serve_stream(server, one_game);
}

task<int> client(const client_options& options) {
  if (options.autoplay) co_return co_await play_by_itself(options);
  co_return co_await play_from_stdin(options);
}

void add_commands(CLI::App& app, command_list& commands) {
  auto settings = std::make_shared<server_settings>();
  CLI::App* serve_cmd = add_server_command(
      app, commands, "guess", "number-guessing game: higher, lower, correct", default_port,
      [settings](server_state& server) { return serve(server, *settings); });
  serve_cmd->add_flag("--udp", settings->udp, "play over UDP: a datagram per guess and per reply")
      ->excludes("--unix");
  serve_cmd->add_option("--max", settings->games.max, "the secret is from 1 to N")
      ->check(CLI::Range(std::uint64_t{1}, std::numeric_limits<std::uint64_t>::max()))
      ->capture_default_str();
  serve_cmd->add_option("--seed", settings->seed,
                        "seed for repeatable secrets (default: std::random_device)");
  add_seconds(*serve_cmd, "--game-timeout", settings->games.game_timeout,
              "UDP: seconds without a guess before a game is dropped (0: never)");
  serve_cmd->add_option("--max-games", settings->games.max_games,
                        "UDP: games kept at once, per worker; more are refused")
      ->check(CLI::Range(std::size_t{1}, std::size_t{100'000'000}))
      ->capture_default_str();
  serve_cmd->add_option("--max-games-per-host", settings->games.max_games_per_host,
                        "UDP: games in progress from one IPv4 address or IPv6 /64, per worker; more are refused")
      ->check(CLI::Range(std::size_t{1}, std::size_t{100'000'000}))
      ->capture_default_str();

  auto options = std::make_shared<client_options>();
  CLI::App* cli = app.add_subcommand("guess-client", "guess client: play from stdin, or --auto");
  add_client_options(*cli, *options, default_port);
  cli->add_flag("--udp", options->udp, "play over UDP")->excludes("--unix");
  auto* autoplay = cli->add_flag("-a,--auto", options->autoplay,
                                 "play by binary search, print the transcript, exit 0 on a win");
  cli->add_option("--games", options->games, "games played at once (with --auto)")
      ->check(CLI::Range(1, 100000))
      ->needs(autoplay);
  add_seconds(*cli, "--try-timeout", options->try_timeout,
              "UDP: seconds without a reply before a guess is sent again")
      ->check(CLI::PositiveNumber);
  commands.push_back({cli, [options] {
                        const auto body = [options] { return client(*options); };
                        // --timeout bounds a whole game played by itself, but
                        // only each reply when a person plays.
                        return options->autoplay ? run_client(*options, "guess-client", body)
                                                 : run_untimed_client(*options, "guess-client", body);
                      }});
}

}  // namespace switchboard::services::guess
