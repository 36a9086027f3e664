#include "guess.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <switchboard/cancel.hpp>
#include <switchboard/net.hpp>
#include <switchboard/time.hpp>

#include "../common/datagram_guard.hpp"
#include "../common/log.hpp"
#include "protocol.hpp"

namespace switchboard::services::guess {
namespace {

using namespace std::chrono_literals;

// Room for the longest line and its CRLF (next_line decides before that
// fills up), plus whatever followed it in the same read.
constexpr std::size_t line_buffer_size = 256;
static_assert(line_buffer_size > max_line_length + 2);

// A larger datagram is cut to this and answered as a line too long.
constexpr std::size_t datagram_buffer_size = 512;
static_assert(datagram_buffer_size > max_line_length + 2);

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
    for (;;) {
      const framed_line framed = next_line(pending_, max_reply_length);
      if (framed.state == framed_line::status::complete) {
        std::string line(framed.line);
        pending_.erase(0, framed.consumed);
        co_return line;
      }
      if (framed.state == framed_line::status::too_long) {
        co_return std::make_error_code(std::errc::message_size);
      }
      std::array<char, line_buffer_size> chunk;
      auto got = co_await server_.read_some(chunk);
      if (!got) co_return got.error();
      if (*got == 0) co_return closed_by_server();
      pending_.append(chunk.data(), *got);
    }
  }

  stream server_;
  std::string pending_;
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
  std::array<std::byte, datagram_buffer_size> buffer_;
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
  std::array<std::byte, line_buffer_size> buf;
  std::size_t filled = 0;
  for (;;) {
    const framed_line framed = next_line(as_text(std::span(buf).first(filled)));
    if (framed.state == framed_line::status::incomplete) {
      auto got = co_await conn.read_some(std::span(buf).subspan(filled));
      if (!got || *got == 0) co_return;  // EOF, reset or a timeout: close
      conn.begin_request();
      filled += *got;
      continue;
    }
    const bool too_long = framed.state == framed_line::status::too_long;
    const std::string reply =
        too_long ? error_reply(bad_guess::too_long, max) : reply_to_line(play, framed.line);
    if (auto sent = co_await conn.write_all(reply); !sent) co_return;
    if (too_long || play.won()) co_return;
    conn.end_request();
    filled -= framed.consumed;
    std::memmove(buf.data(), buf.data() + framed.consumed, filled);
    if (filled > 0) conn.begin_request();  // the next line has begun already
  }
}

task<void> serve_datagrams(datagram_socket& socket, server_state& server,
                           const game_table::settings& games, secret_source& secrets) {
  datagram_guard guard({.per_source_rate = server.options.limit.udp_rate});
  game_table table(games, secrets, server.stats);
  log_limiter error_log;
  std::array<std::byte, datagram_buffer_size> buf;
  for (;;) {
    auto got = co_await socket.receive_from(buf);
    if (!got) {
      if (got.error() == std::errc::operation_canceled) co_return;
      if (std::uint64_t skipped = 0; error_log.allow(skipped)) {
        log("guess: receive on {}: {} ({} more)", socket.local(), got.error().message(), skipped);
      }
      co_await sleep_for(10ms);
      continue;
    }
    server.stats.bytes_in += got->size;
    // Before the table sees the guess: a guess whose reply would be dropped
    // is not counted, and its retransmission will be.
    if (!guard.allow(got->from)) continue;
    const std::string reply = table.reply(got->from, as_text(std::span(buf).first(got->size)));
    if (auto sent = co_await socket.send_to(as_bytes(reply), got->from)) server.stats.bytes_out += *sent;
  }
}

task<int> serve(server_state& server, const server_settings& settings) {
  secret_source secrets(settings.seed);
  if (settings.udp) {
    const datagram_fn games = [&settings, &secrets](datagram_socket& socket, server_state& state) {
      return serve_datagrams(socket, state, settings.games, secrets);
    };
    co_return co_await serve_datagram(server, games);
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
                        "UDP: games kept at once; more are refused")
      ->check(CLI::Range(std::size_t{1}, std::size_t{100'000'000}))
      ->capture_default_str();
  serve_cmd->add_option("--max-games-per-host", settings->games.max_games_per_host,
                        "UDP: games in progress from one IPv4 address or IPv6 /64; more are refused")
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
                                                 : run_on_backend(options->backend, body);
                      }});
}

}  // namespace switchboard::services::guess
