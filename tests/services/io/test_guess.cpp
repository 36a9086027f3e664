// The guessing game as a user runs it: a separate server process on the
// backend under test, played by guess-client (another process), by socat,
// and by raw blocking sockets that know nothing of switchboard.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../../support/plain.hpp"
#include "guess/protocol.hpp"

using namespace switchboard::testing;

namespace {

struct guess_server {
  child_process process;
  std::uint16_t port;
  bool udp;

  explicit guess_server(std::vector<std::string> extra = {})
      : process(args(extra)), port(process.wait_listening()),
        udp(std::find(extra.begin(), extra.end(), "--udp") != extra.end()) {
    REQUIRE(port != 0);
  }

  static std::vector<std::string> args(std::vector<std::string> extra) {
    std::vector<std::string> argv{program(), "guess", "--port", "0", "--backend", backend_name()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  // guess-client on the same transport, with `extra` options and `input` on stdin.
  command_result client(std::vector<std::string> extra, std::string_view input = {},
                        std::chrono::milliseconds limit = 60s) const {
    std::vector<std::string> argv{program(), "guess-client", "--port", std::to_string(port),
                                  "--backend", backend_name()};
    if (udp) argv.push_back("--udp");
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run_command(argv, limit, input);
  }

  bool alive() { return !process.wait_exit(0ms); }

  // Still running, and a whole new game is won.
  void check_serving() {
    REQUIRE(alive());
    auto game = client({"--auto", "--timeout", "20"});
    INFO(game.err);
    CHECK(game.status == 0);
    CHECK(game.out.find("won in") != std::string::npos);
  }

  // Stops the server by its PID as a user would; it exits 0.
  void stop() {
    process.signal(SIGTERM);
    CHECK(process.wait_exit(15s) == 0);
  }
};

sockaddr_in loopback(std::uint16_t port, const char* host = "127.0.0.1") {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  ::inet_pton(AF_INET, host, &addr.sin_addr);
  return addr;
}

// A blocking TCP client outside any runtime, reading the server line by line.
class tcp_player {
 public:
  explicit tcp_player(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    const sockaddr_in addr = loopback(port);
    REQUIRE(::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
  }
  ~tcp_player() { ::close(fd_); }
  tcp_player(const tcp_player&) = delete;
  tcp_player& operator=(const tcp_player&) = delete;

  // Sends what the server will take; false once it has closed.
  bool send(std::string_view bytes) { return send_all(fd_, bytes); }

  // The next line with its LF; nothing at EOF, on a reset, or after `limit`.
  std::optional<std::string> line(std::chrono::milliseconds limit = 5s) {
    const auto deadline = steady::now() + limit;
    for (;;) {
      if (const auto lf = pending_.find('\n'); lf != std::string::npos) {
        std::string line = pending_.substr(0, lf + 1);
        pending_.erase(0, lf + 1);
        return line;
      }
      if (!receive(deadline)) return std::nullopt;
    }
  }

  // Sends `guess` and returns the reply line.
  std::string ask(std::string_view guess) {
    REQUIRE(send(std::string(guess) + "\n"));
    auto reply = line();
    REQUIRE(reply);
    return *reply;
  }

  // True when the server closes the connection (EOF or reset) within
  // `limit`, discarding what it still sends.
  bool closed_within(std::chrono::milliseconds limit) {
    const auto deadline = steady::now() + limit;
    while (receive(deadline)) pending_.clear();
    return steady::now() < deadline;
  }

  int fd() const { return fd_; }

 private:
  // Appends what arrives before `deadline`; false at EOF, error or the deadline.
  bool receive(steady::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
    if (left.count() <= 0 || !readable(fd_, left)) return false;
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return false;
    pending_.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  int fd_;
  std::string pending_;
};

// A blocking UDP client outside any runtime, on its own source address.
class udp_player {
 public:
  explicit udp_player(std::uint16_t port, const char* source = "127.0.0.1")
      : fd_(::socket(AF_INET, SOCK_DGRAM, 0)), server_(loopback(port)) {
    const sockaddr_in local = loopback(0, source);
    REQUIRE(::bind(fd_, reinterpret_cast<const sockaddr*>(&local), sizeof local) == 0);
  }
  ~udp_player() { ::close(fd_); }
  udp_player(const udp_player&) = delete;
  udp_player& operator=(const udp_player&) = delete;

  void send(std::string_view datagram) {
    REQUIRE(::sendto(fd_, datagram.data(), datagram.size(), 0,
                     reinterpret_cast<const sockaddr*>(&server_), sizeof server_) ==
            static_cast<ssize_t>(datagram.size()));
  }

  // The next datagram, or nothing after `limit`.
  std::optional<std::string> receive(std::chrono::milliseconds limit = 5s) {
    if (!readable(fd_, limit)) return std::nullopt;
    char buf[2048];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<std::size_t>(n));
  }

  std::string ask(std::string_view datagram) {
    send(datagram);
    auto reply = receive();
    REQUIRE(reply);
    return *reply;
  }

  int fd() const { return fd_; }

 private:
  int fd_;
  sockaddr_in server_;
};

struct win {
  std::uint64_t tries;   // as the server counted them
  std::uint64_t secret;  // the winning guess
};

// Plays on by binary search from 1 to `max` through `ask` (a guess in, the
// reply line out) and checks every reply's exact form, and that the server
// counted `counted_before` tries plus the guesses made here.
win play_out(const std::function<std::string(std::string)>& ask, std::uint64_t max,
             std::uint64_t counted_before = 0) {
  std::uint64_t low = 1, high = max;
  for (std::uint64_t made = 1; made <= 64; ++made) {
    const std::uint64_t guess = low + (high - low) / 2;
    const std::string reply = ask(std::to_string(guess));
    if (reply == "higher\n") {
      low = guess + 1;
    } else if (reply == "lower\n") {
      high = guess - 1;
    } else {
      const std::uint64_t tries = counted_before + made;
      CHECK(reply == "correct after " + std::to_string(tries) + " tries\n");
      return {tries, guess};
    }
  }
  FAIL("binary search did not end");
  return {};
}

// The bad lines of the spec and their exact replies, for a game from 1 to 100.
const std::vector<std::pair<std::string, std::string>> bad_lines{
    {"abc", "error: not a number\n"},
    {"42abc", "error: not a number\n"},
    {"", "error: not a number\n"},
    {" 42", "error: not a number\n"},
    {"0", "error: out of range, guess from 1 to 100\n"},
    {"101", "error: out of range, guess from 1 to 100\n"},
    {"-1", "error: out of range, guess from 1 to 100\n"},
    {"99999999999999999999", "error: out of range, guess from 1 to 100\n"},
};

std::string greeting_line(std::uint64_t max) {
  return "guess a number from 1 to " + std::to_string(max) + "\n";
}

std::string last_line(const std::string& text) {
  const auto end = text.find_last_not_of('\n');
  if (end == std::string::npos) return {};
  return text.substr(text.rfind('\n', end) + 1, end - text.rfind('\n', end));
}

}  // namespace

TEST_CASE("guess-client --auto wins over TCP, and the same seed replays the same game",
          "[io][guess]") {
  std::vector<std::string> transcripts;
  for (const char* seed : {"1234", "1234", "99"}) {
    guess_server server({"--seed", seed});
    auto game = server.client({"--auto"});
    INFO(game.err);
    REQUIRE(game.status == 0);
    CHECK(game.out.starts_with("guess a number from 1 to 100\n> 50\n"));
    const std::string tries = last_line(game.out).substr(std::string("won in ").size());
    CHECK(game.out.find("correct after " + tries + "\nwon in " + tries + "\n") != std::string::npos);
    transcripts.push_back(game.out);
    server.stop();
  }
  CHECK(transcripts[0] == transcripts[1]);
  CHECK(transcripts[0] != transcripts[2]);
}

TEST_CASE("guess-client --auto wins over UDP, and the same seed replays the same game",
          "[io][guess][udp]") {
  std::vector<std::string> transcripts;
  for (const char* seed : {"1234", "1234", "99"}) {
    guess_server server({"--udp", "--seed", seed});
    auto game = server.client({"--auto"});
    INFO(game.err);
    REQUIRE(game.status == 0);
    CHECK(game.out.starts_with("guess a number from 1 to 100\n> 50\n"));
    CHECK(last_line(game.out).starts_with("won in "));
    transcripts.push_back(game.out);
    server.stop();
  }
  CHECK(transcripts[0] == transcripts[1]);
  CHECK(transcripts[0] != transcripts[2]);
}

TEST_CASE("guess serves games on a Unix path", "[io][guess][unix]") {
  temp_dir dir;
  const std::string path = dir.file("guess.sock");
  child_process server({program(), "guess", "--unix", path, "--backend", backend_name()});
  REQUIRE(server.wait_for_line("listening on"));
  auto game = run_command({program(), "guess-client", "--unix", path, "--auto", "--backend",
                           backend_name()});
  INFO(game.err);
  CHECK(game.status == 0);
  CHECK(last_line(game.out).starts_with("won in "));
  server.signal(SIGTERM);
  CHECK(server.wait_exit() == 0);
}

TEST_CASE("guess-client plays the lines typed on its standard input", "[io][guess]") {
  for (const char* transport : {"tcp", "udp"}) {
    INFO(transport);
    guess_server server(transport == std::string("udp")
                            ? std::vector<std::string>{"--udp", "--max", "2", "--seed", "5"}
                            : std::vector<std::string>{"--max", "2", "--seed", "5"});
    // With --max 2 the secret is 1 or 2: typing both wins either way.
    auto game = server.client({}, "abc\n1\n2\n");
    INFO(game.err);
    CHECK(game.status == 0);
    CHECK((game.out == "guess a number from 1 to 2\nerror: not a number\ncorrect after 1 tries\n" ||
           game.out ==
               "guess a number from 1 to 2\nerror: not a number\nhigher\ncorrect after 2 tries\n"));
    // Input that ends before the game is won is a failure.
    auto gave_up = server.client({}, "abc\n");
    CHECK(gave_up.status == 1);
    CHECK(gave_up.err.find("ended before the game was won") != std::string::npos);
    server.stop();
  }
}

TEST_CASE("a plain TCP client gets the exact lines of the protocol", "[io][guess]") {
  guess_server server({"--max", "100"});
  tcp_player player(server.port);
  CHECK(player.line() == "guess a number from 1 to 100\n");
  const auto ask = [&](std::string guess) { return player.ask(guess); };
  play_out(ask, 100);
  // One game per connection: closed after "correct".
  CHECK(player.closed_within(5s));

  // socat knows nothing of us; with --max 1 the whole session is known.
  guess_server one({"--max", "1"});
  auto session = run_command({"socat", "-", "TCP:127.0.0.1:" + std::to_string(one.port)}, 20s,
                             "0\r\n1\r\n");
  CHECK(session.status == 0);
  CHECK(session.out ==
        "guess a number from 1 to 1\nerror: out of range, guess from 1 to 1\ncorrect after 1 tries\n");
  one.stop();
  server.stop();
}

TEST_CASE("a plain UDP client gets the greeting for an empty datagram and a reply per guess",
          "[io][guess][udp]") {
  guess_server server({"--udp", "--max", "100"});
  udp_player player(server.port);
  CHECK(player.ask("") == "guess a number from 1 to 100\n");
  // Line ends are optional in a datagram: "50", "50\n" and "50\r\n" are the same guess.
  const auto ask = [&](std::string guess) { return player.ask(guess + "\r\n"); };
  play_out(ask, 100);

  guess_server one({"--udp", "--max", "1"});
  auto session = run_command({"socat", "-", "UDP:127.0.0.1:" + std::to_string(one.port)}, 20s, "1\n");
  CHECK(session.out == "correct after 1 tries\n");
  one.stop();
  server.stop();
}

TEST_CASE("200 games at once are each won, over TCP and over UDP", "[io][guess][load]") {
  for (const bool udp : {false, true}) {
    INFO((udp ? "udp" : "tcp"));
    // 200 players on one address: more games, and more guesses a second,
    // than the defaults allow one source.
    guess_server server(udp ? std::vector<std::string>{"--udp", "--max-games-per-host", "200", "--udp-rate",
                                                       "100000"}
                            : std::vector<std::string>{});
    auto games = server.client({"--auto", "--games", "200", "--timeout", "60"}, {}, 90s);
    INFO(games.err);
    CHECK(games.status == 0);
    CHECK(games.out.starts_with("won 200 games in "));
    server.stop();
  }
}

TEST_CASE("bad lines get errors, do not count, and the game goes on (TCP)", "[io][guess]") {
  guess_server server({"--seed", "3"});
  tcp_player player(server.port);
  REQUIRE(player.line() == "guess a number from 1 to 100\n");
  for (const auto& [line, reply] : bad_lines) {
    INFO("'" << line << "'");
    CHECK(player.ask(line) == reply);
  }
  const auto ask = [&](std::string guess) { return player.ask(guess); };
  play_out(ask, 100);
  server.check_serving();
  server.stop();
}

TEST_CASE("bad datagrams get errors, do not count, and the game goes on (UDP)", "[io][guess][udp]") {
  guess_server server({"--udp", "--seed", "3"});
  udp_player player(server.port);
  for (const auto& [line, reply] : bad_lines) {
    INFO("'" << line << "'");
    CHECK(player.ask(line + "\n") == reply);
  }
  CHECK(player.ask(std::string(65, '7')) == "error: line longer than 64 bytes\n");
  // Larger than any datagram the game takes (512 bytes): dropped unread,
  // unanswered, and counted in the statistics.
  player.send(std::string(1500, '7'));
  CHECK_FALSE(player.receive(300ms));
  const auto ask = [&](std::string guess) { return player.ask(guess); };
  play_out(ask, 100);
  server.process.signal(SIGUSR1);
  auto stats = server.process.wait_for_line("stats:");
  REQUIRE(stats);
  CHECK(stats->find(" dropped 1 ") != std::string::npos);
  server.check_serving();
  server.stop();
}

TEST_CASE("a line longer than 64 bytes gets an error and the connection is closed", "[io][guess]") {
  guess_server server;
  {
    tcp_player player(server.port);
    REQUIRE(player.line() == "guess a number from 1 to 100\n");
    CHECK(player.ask("0") == "error: out of range, guess from 1 to 100\n");
    CHECK(player.ask(std::string(65, '1')) == "error: line longer than 64 bytes\n");
    CHECK(player.closed_within(5s));
  }
  {
    // 1 MiB without a line end: the server answers once it is sure, and closes
    // without reading the rest (so the sender may see a reset).
    tcp_player player(server.port);
    REQUIRE(player.line() == "guess a number from 1 to 100\n");
    player.send(std::string(1 << 20, '9'));
    CHECK(player.line() == "error: line longer than 64 bytes\n");
    CHECK(player.closed_within(5s));
  }
  server.check_serving();
  server.stop();
}

TEST_CASE("a player thinking between lines falls under --idle-timeout, not --request-timeout",
          "[io][guess][slow]") {
  guess_server server({"--request-timeout", "0.5", "--idle-timeout", "2", "--max", "1000000000"});
  tcp_player thinker(server.port);
  REQUIRE(thinker.line() == "guess a number from 1 to 1000000000\n");
  std::this_thread::sleep_for(1s);  // longer than a request may take, but no request began
  const std::string reply = thinker.ask("1");
  REQUIRE(reply == "higher\n");
  const auto idle_since = steady::now();
  CHECK(thinker.closed_within(5s));
  CHECK(steady::now() - idle_since >= 1800ms);
  server.stop();
}

TEST_CASE("a duplicated UDP guess is answered twice but counted once", "[io][guess][udp]") {
  guess_server server({"--udp", "--seed", "11"});
  udp_player player(server.port);
  // Both copies arrive before either reply is read, as when the network
  // duplicates a datagram or the client retransmits too early.
  player.send("50\n");
  player.send("50\n");
  const auto first = player.receive();
  const auto second = player.receive();
  REQUIRE(first);
  REQUIRE(second);
  CHECK(*first == *second);
  // Binary search starts with 50 again, a third copy: the server has
  // counted exactly the guesses play_out made.
  const auto ask = [&](std::string guess) { return player.ask(guess); };
  const win won = play_out(ask, 100);
  // The winning guess again gets "correct" again, without a new game...
  const std::string correct = "correct after " + std::to_string(won.tries) + " tries\n";
  CHECK(player.ask(std::to_string(won.secret)) == correct);
  // ...while another guess starts a new one.
  const std::string next = player.ask(won.secret == 1 ? "2" : "1");
  CHECK((next == "higher\n" || next == "lower\n" || next == "correct after 1 tries\n"));

  // A client that resends each guess after 1 ms, long before many replies
  // come back, still wins with every guess counted once.
  for (int game = 0; game < 5; ++game) {
    auto impatient = server.client({"--auto", "--try-timeout", "0.001"});
    INFO(impatient.err);
    REQUIRE(impatient.status == 0);
    const std::string tries = last_line(impatient.out).substr(std::string("won in ").size());
    CHECK(impatient.out.find("correct after " + tries + "\nwon in " + tries + "\n") != std::string::npos);
  }
  server.stop();
}

namespace {

// A UDP socket on 127.0.0.1 and a free port, for a stand-in server.
int bound_udp_socket() {
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in addr = loopback(0);
  REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
  return fd;
}

// guess-client --udp --auto against the stand-in server on `fake`,
// resending each datagram after 50 ms without a reply.
child_process impatient_client(int fake) {
  sockaddr_in addr{};
  socklen_t size = sizeof addr;
  REQUIRE(::getsockname(fake, reinterpret_cast<sockaddr*>(&addr), &size) == 0);
  return child_process({program(), "guess-client", "--udp", "--auto", "--port",
                        std::to_string(ntohs(addr.sin_port)), "--try-timeout", "0.05",
                        "--backend", backend_name()});
}

}  // namespace

TEST_CASE("guess-client resends a guess whose reply was lost and drops the late replies",
          "[io][guess][udp]") {
  // A stand-in server on a lossy, duplicating network: the first copy of
  // each datagram is lost, and the second is answered twice.
  const int fake = bound_udp_socket();
  child_process client = impatient_client(fake);
  switchboard::services::guess::game play(37, 100);
  std::optional<std::string> last;
  std::size_t received = 0;
  const auto deadline = steady::now() + 20s;
  while (!client.wait_exit(0ms) && steady::now() < deadline) {
    if (!readable(fake, 10ms)) continue;
    char buf[512];
    sockaddr_in from{};
    socklen_t from_size = sizeof from;
    const ssize_t n = ::recvfrom(fake, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &from_size);
    REQUIRE(n >= 0);
    ++received;
    const std::string datagram(buf, static_cast<std::size_t>(n));
    if (datagram != last) {
      last = datagram;  // lost
      continue;
    }
    const std::string reply = datagram.empty()
                                  ? switchboard::services::guess::greeting(100)
                                  : switchboard::services::guess::reply_to_line(play, datagram.substr(0, datagram.size() - 1));
    for (int copy = 0; copy < 2; ++copy) {
      ::sendto(fake, reply.data(), reply.size(), 0, reinterpret_cast<const sockaddr*>(&from), from_size);
    }
  }
  ::close(fake);
  REQUIRE(client.wait_exit(0ms) == 0);
  CHECK(client.out() ==
        "guess a number from 1 to 100\n> 50\nlower\n> 25\nhigher\n> 37\ncorrect after 3 tries\nwon in 3 tries\n");
  CHECK(received == 8);  // greeting and three guesses, each sent twice
}

TEST_CASE("guess-client drops the late replies of a slow network that answers every copy",
          "[io][guess][udp]") {
  // A stand-in server behind a slow path: every datagram, each copy of a
  // guess included, is answered 120 ms after it arrives, while the client
  // resends after 50 ms. The replies to the second and third copies come
  // more than one try timeout after the first reply.
  const int fake = bound_udp_socket();
  child_process client = impatient_client(fake);
  switchboard::services::guess::game play(37, 100);
  struct delayed_reply {
    steady::time_point due;
    std::string text;
    sockaddr_in to;
  };
  std::deque<delayed_reply> in_flight;
  const auto deadline = steady::now() + 20s;
  while (!client.wait_exit(0ms) && steady::now() < deadline) {
    while (!in_flight.empty() && in_flight.front().due <= steady::now()) {
      const delayed_reply& reply = in_flight.front();
      ::sendto(fake, reply.text.data(), reply.text.size(), 0,
               reinterpret_cast<const sockaddr*>(&reply.to), sizeof reply.to);
      in_flight.pop_front();
    }
    if (!readable(fake, 5ms)) continue;
    char buf[512];
    sockaddr_in from{};
    socklen_t from_size = sizeof from;
    const ssize_t n = ::recvfrom(fake, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &from_size);
    REQUIRE(n >= 0);
    const std::string datagram(buf, static_cast<std::size_t>(n));
    // A repeated guess is answered without being counted, as the real server does.
    const std::string reply = datagram.empty()
                                  ? switchboard::services::guess::greeting(100)
                                  : switchboard::services::guess::reply_to_line(play, datagram.substr(0, datagram.size() - 1));
    in_flight.push_back({steady::now() + 120ms, reply, from});
  }
  ::close(fake);
  INFO(client.err());
  REQUIRE(client.wait_exit(0ms) == 0);
  CHECK(client.out() ==
        "guess a number from 1 to 100\n> 50\nlower\n> 25\nhigher\n> 37\ncorrect after 3 tries\nwon in 3 tries\n");
}

TEST_CASE("guess-client gives up with status 1 when no server answers", "[io][guess][udp]") {
  // A socket that takes the datagrams and never answers.
  udp_player silent(0);
  sockaddr_in addr{};
  socklen_t size = sizeof addr;
  REQUIRE(::getsockname(silent.fd(), reinterpret_cast<sockaddr*>(&addr), &size) == 0);
  for (const char* games : {"1", "20"}) {
    auto result = run_command({program(), "guess-client", "--udp", "--auto", "--games", games,
                               "--port", std::to_string(ntohs(addr.sin_port)), "--timeout", "0.5",
                               "--try-timeout", "0.1", "--backend", backend_name()},
                              20s);
    INFO(result.err);
    CHECK(result.status == 1);
    CHECK(result.err.find("timed out") != std::string::npos);
  }
}

TEST_CASE("UDP games stay bounded under 2,000 sources and the server's memory stays flat",
          "[io][guess][udp][load]") {
  // So many numbers that no guess here wins by chance and ends its game
  // early, and few enough that a game takes fewer guesses than the datagram
  // guard lets one source send at once (its burst of 50).
  const std::uint64_t max = 1'000'000'000'000;
  // The guard lets 200 ports of one address through (one source's rate is
  // not under test here).
  guess_server server({"--udp", "--max", std::to_string(max), "--max-games", "100",
                       "--max-games-per-host", "20", "--udp-rate", "1000000"});
  const pid_t pid = server.process.pid();
  // A game in progress before the flood.
  udp_player earlier(server.port, "127.0.0.2");
  const std::string earlier_reply = earlier.ask("50");
  REQUIRE_FALSE(earlier_reply.starts_with("error"));
  // 200 ports of one address (all open at once, so that no port comes
  // back): 20 games, the rest refused for that host.
  std::vector<std::unique_ptr<udp_player>> same_host;
  std::size_t refused_for_host = 0;
  for (int i = 0; i < 200; ++i) {
    auto& player = same_host.emplace_back(std::make_unique<udp_player>(server.port));
    refused_for_host += player->ask("50") == "error: too many games from your address, try again later\n";
  }
  CHECK(refused_for_host == 180);
  const std::size_t rss_before = rss_kib(pid);
  // 2,000 addresses (127.1.x.y is loopback too): 79 more games, the rest refused.
  std::size_t refused = 0;
  for (int i = 0; i < 2000; ++i) {
    const std::string source = "127.1." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1);
    udp_player player(server.port, source.c_str());
    refused += player.ask("50") == "error: too many games, try again later\n";
  }
  CHECK(refused == 1921);
  // The datagram guard remembers each source (about 200 bytes each); a game
  // table without a cap would add twice as much again.
  const std::size_t rss_after = rss_kib(pid);
  INFO("RSS " << rss_before << " KiB before, " << rss_after << " KiB after");
  if (rss_is_meaningful) CHECK(rss_after < rss_before + 1024);
  server.process.signal(SIGUSR1);
  auto stats = server.process.wait_for_line("stats:");
  REQUIRE(stats);
  CHECK(stats->find("open 100 total 100 rejected 2101") != std::string::npos);
  // The game from before the flood goes on, and newcomers are still answered.
  const auto ask = [&](std::string guess) { return earlier.ask(guess); };
  play_out(ask, max, 1);
  udp_player newcomer(server.port, "127.3.0.1");
  CHECK(newcomer.ask("") == greeting_line(max));
  CHECK(server.alive());
  server.stop();
}
