// The programs in examples/ as a reader runs them, on the backend under test:
// select-demo with every kind of standard input, timeout-demo's deadline on a
// whole line, and the tutorial's services, hello and kv, answering raw sockets.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "../../support/async.hpp"

using namespace switchboard::testing;
using std::chrono::steady_clock;

namespace {

std::vector<std::string> example(const char* env_name, std::vector<std::string> args) {
  args.insert(args.begin(), helper(env_name));
  args.insert(args.end(), {"--backend", backend_name()});
  return args;
}

// A descriptor the test opened, closed with it; O_CLOEXEC keeps it out of
// children except as the standard input they are given.
class owned_fd {
 public:
  explicit owned_fd(int fd) : fd_(fd) { REQUIRE(fd >= 0); }
  ~owned_fd() { close(); }
  owned_fd(const owned_fd&) = delete;
  owned_fd& operator=(const owned_fd&) = delete;
  int get() const { return fd_; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  void write(std::string_view text) const {
    REQUIRE(::write(fd_, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  }

 private:
  int fd_;
};

// Members initialise in order: the pipe is made before its ends are taken.
struct test_pipe {
  int ends[2] = {-1, -1};
  bool made = ::pipe2(ends, O_CLOEXEC) == 0;
  owned_fd read_end{ends[0]};
  owned_fd write_end{ends[1]};
};

// Starts select-demo on `stdin_fd`; checks it is still waiting, then writes
// `text` to `writer` and expects the demo to see it.
void expect_wakes_on_data(int stdin_fd, const owned_fd& writer, std::string_view text) {
  child_process demo(example("SELECT_DEMO_BIN", {"--seconds", "30"}), stdin_fd);
  CHECK_FALSE(demo.wait_exit(300ms));
  writer.write(text);
  REQUIRE(demo.wait_exit(10s) == 0);
  CHECK(demo.out() == "Data is available now!\n");
}

// Seconds since `start`.
double seconds_since(steady_clock::time_point start) {
  return std::chrono::duration<double>(steady_clock::now() - start).count();
}

// A tutorial service run as a reader runs it, with `args`.
struct tutorial_server {
  tutorial_server(const char* env_name, std::vector<std::string> args)
      : process(example(env_name, std::move(args))) {
    REQUIRE(port != 0);
  }
  child_process process;
  const std::uint16_t port = process.wait_listening();  // with --port 0, the one the kernel picked

  // A client: a blocking socket whose reads give up after 10 s.
  owned_fd connect() const { return owned_fd(raw_connect(port)); }
};

void send_text(const owned_fd& client, std::string_view text) {
  REQUIRE(::send(client.get(), text.data(), text.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(text.size()));
}

// What the client receives until EOF, a reset or 10 s of silence; then it
// hangs up, so that the server's lingering close ends at once.
std::string read_to_eof(owned_fd& client) {
  std::string all;
  char chunk[256];
  for (ssize_t n; (n = ::recv(client.get(), chunk, sizeof chunk, 0)) > 0;) all.append(chunk, n);
  client.close();
  return all;
}

// The next `count` lines the client receives, byte by byte so that nothing after them is taken.
std::string read_lines(const owned_fd& client, std::size_t count) {
  std::string lines;
  char byte;
  while (static_cast<std::size_t>(std::count(lines.begin(), lines.end(), '\n')) < count &&
         ::recv(client.get(), &byte, 1, 0) == 1) {
    lines += byte;
  }
  return lines;
}

// Sends `lines` and returns the next `replies` lines received.
std::string ask(const owned_fd& client, std::string_view lines, std::size_t replies = 1) {
  send_text(client, lines);
  return read_lines(client, replies);
}

}  // namespace

TEST_CASE("select-demo wakes when data reaches a pipe, a FIFO or a terminal", "[io][examples]") {
  SECTION("a pipe") {
    test_pipe pipe;
    expect_wakes_on_data(pipe.read_end.get(), pipe.write_end, "text\n");
  }
  SECTION("a FIFO, as in the seed: selectDemo < myfifo & echo text > myfifo") {
    temp_dir dir;
    const std::string fifo = dir.file("myfifo");
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    // Opened here (without blocking), since posix_spawn cannot wait in open().
    owned_fd reader(::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    owned_fd writer(::open(fifo.c_str(), O_WRONLY | O_CLOEXEC));
    REQUIRE(::fcntl(reader.get(), F_SETFL, 0) == 0);
    expect_wakes_on_data(reader.get(), writer, "text\n");
  }
  SECTION("a terminal: a line typed at the keyboard") {
    owned_fd keyboard(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
    REQUIRE(::grantpt(keyboard.get()) == 0);
    REQUIRE(::unlockpt(keyboard.get()) == 0);
    owned_fd terminal(::open(::ptsname(keyboard.get()), O_RDWR | O_NOCTTY | O_CLOEXEC));
    expect_wakes_on_data(terminal.get(), keyboard, "text\n");
  }
}

TEST_CASE("select-demo times out on an empty pipe that stays open", "[io][examples]") {
  test_pipe pipe;
  const auto start = steady_clock::now();
  child_process demo(example("SELECT_DEMO_BIN", {"--seconds", "1"}), pipe.read_end.get());
  REQUIRE(demo.wait_exit(15s) == 0);
  CHECK(demo.out() == "No data within 1 seconds\n");
  CHECK(seconds_since(start) >= 1.0);  // the deadline did not fire early
}

TEST_CASE("select-demo finds regular files and /dev/null ready at once", "[io][examples]") {
  // epoll refuses these descriptors (EPERM); like select(2), the runtime
  // reports them readable, also when they are empty.
  SECTION("a regular file with data") {
    auto result = run_command(example("SELECT_DEMO_BIN", {"--seconds", "30"}), 10s, "text\n");
    CHECK(result.status == 0);
    CHECK(result.out == "Data is available now!\n");
  }
  SECTION("an empty regular file") {
    auto result = run_command(example("SELECT_DEMO_BIN", {"--seconds", "30"}), 10s, "");
    CHECK(result.status == 0);
    CHECK(result.out == "Data is available now!\n");
  }
  SECTION("/dev/null") {
    owned_fd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    child_process demo(example("SELECT_DEMO_BIN", {"--seconds", "30"}), null.get());
    REQUIRE(demo.wait_exit(10s) == 0);
    CHECK(demo.out() == "Data is available now!\n");
  }
}

TEST_CASE("timeout-demo greets a line that arrives in time", "[io][examples]") {
  auto result = run_command(example("TIMEOUT_DEMO_BIN", {"--seconds", "10"}), 15s, "ada\nrest\n");
  CHECK(result.status == 0);
  CHECK(result.out == "hello, ada\n");
}

TEST_CASE("timeout-demo's deadline covers the whole line, however the bytes drip in",
          "[io][examples]") {
  test_pipe pipe;
  const auto start = steady_clock::now();
  child_process demo(example("TIMEOUT_DEMO_BIN", {"--seconds", "1"}), pipe.read_end.get());
  // A byte every 200 ms would keep a per-read timeout of 1 s from ever firing.
  std::optional<int> status;
  while (!status && seconds_since(start) < 10) {
    pipe.write_end.write("a");
    status = demo.wait_exit(200ms);
  }
  REQUIRE(status == 1);
  CHECK(demo.out() == "too slow: no line within 1 seconds\n");
  CHECK(seconds_since(start) >= 1.0);
}

TEST_CASE("the tutorial's hello service greets raw socket clients, several at once",
          "[io][examples]") {
  tutorial_server hello("HELLO_SERVICE_BIN", {"--port", "0", "--idle-timeout", "1"});

  // The first client sends half its name and pauses; the second is served meanwhile.
  owned_fd slow = hello.connect();
  send_text(slow, "Gr");
  owned_fd quick = hello.connect();
  send_text(quick, "Ada\r\n");
  CHECK(read_to_eof(quick) == "hello, who are you?\nhello, Ada!\n");
  send_text(slow, "ace\n");
  CHECK(read_to_eof(slow) == "hello, who are you?\nhello, Grace!\n");

  // A name over 100 bytes is refused; a client that never answers is dropped after --idle-timeout.
  owned_fd verbose = hello.connect();
  send_text(verbose, std::string(101, 'a') + "\n");
  CHECK(read_to_eof(verbose) == "hello, who are you?\nerror: name too long\n");
  owned_fd silent = hello.connect();
  CHECK(read_to_eof(silent) == "hello, who are you?\n");

  hello.process.signal(SIGTERM);
  CHECK(hello.process.wait_exit(10s) == 0);
}

TEST_CASE("the tutorial's kv service answers each line, and its clients share the store",
          "[io][examples]") {
  tutorial_server kv("KV_SERVICE_BIN", {"--port", "0"});
  const owned_fd writer = kv.connect();
  CHECK(ask(writer, "SET greeting hello, world\n") == "OK\n");
  CHECK(ask(writer, "GET greeting\r\n") == "VALUE hello, world\n");
  CHECK(ask(writer, "GET nothing\n") == "NOT FOUND\n");
  CHECK(ask(writer, "SET empty \n") == "OK\n");
  CHECK(ask(writer, "GET empty\n") == "VALUE \n");
  CHECK(ask(writer, "PUT a b\n") == "ERR expected SET key value or GET key\n");
  CHECK(ask(writer, "SET novalue\n") == "ERR expected SET key value or GET key\n");
  CHECK(ask(writer, "\n") == "ERR expected SET key value or GET key\n");

  // Several lines in one read, one line over several: a reply for each line, in order.
  CHECK(ask(writer, "SET n 1\nSET n 2\nGET n\n", 3) == "OK\nOK\nVALUE 2\n");
  send_text(writer, "GE");
  std::this_thread::sleep_for(50ms);
  send_text(writer, "T n");
  CHECK(ask(writer, "\n") == "VALUE 2\n");

  owned_fd reader = kv.connect();
  CHECK(ask(reader, "GET greeting\n") == "VALUE hello, world\n");

  // A client that closes after its last line ends its session cleanly.
  send_text(reader, "GET n\n");
  ::shutdown(reader.get(), SHUT_WR);
  CHECK(read_to_eof(reader) == "VALUE 2\n");
}

TEST_CASE("the tutorial's kv service takes lines of 256 bytes and closes on a longer one",
          "[io][examples]") {
  tutorial_server kv("KV_SERVICE_BIN", {"--port", "0"});
  const std::string value(256 - 6, 'v');  // "SET k " and the value: 256 bytes
  owned_fd client = kv.connect();
  CHECK(ask(client, "SET k " + value + "\r\n") == "OK\n");
  CHECK(ask(client, "GET k\n") == "VALUE " + value + "\n");

  send_text(client, "SET k " + value + "v\n");
  CHECK(read_to_eof(client) == "ERR line too long\n");

  // Without a line end at all, the reply comes as soon as the 257th byte does.
  const owned_fd flood = kv.connect();
  send_text(flood, std::string(257, 'x'));
  CHECK(read_lines(flood, 1) == "ERR line too long\n");

  const owned_fd next = kv.connect();
  CHECK(ask(next, "GET k\n") == "VALUE " + value + "\n");
}

TEST_CASE("the tutorial's kv service lets a client think between lines for --idle-timeout, "
          "but a line must arrive within --request-timeout",
          "[io][examples]") {
  tutorial_server kv("KV_SERVICE_BIN", {"--port", "0", "--idle-timeout", "3", "--request-timeout", "1"});
  const auto start = steady_clock::now();
  owned_fd silent = kv.connect();

  // A pause longer than the request timeout, between lines, is idle time.
  const owned_fd thinker = kv.connect();
  CHECK(ask(thinker, "SET a 1\n") == "OK\n");
  std::this_thread::sleep_for(1500ms);
  CHECK(ask(thinker, "GET a\n") == "VALUE 1\n");

  // A byte every 200 ms keeps the idle timeout away, not the request timeout.
  owned_fd dripper = kv.connect();
  const auto drip_start = steady_clock::now();
  pollfd closed{.fd = dripper.get(), .events = POLLIN, .revents = 0};
  for (int sent = 0; sent < 50 && ::poll(&closed, 1, 200) == 0; ++sent) {
    (void)::send(dripper.get(), "x", 1, MSG_NOSIGNAL);
  }
  const double dripped = seconds_since(drip_start);
  CHECK(read_to_eof(dripper).empty());
  CHECK(dripped >= 1.0);
  CHECK(dripped < 3.0);

  // A client that never sends a byte is closed after the idle timeout.
  CHECK(read_to_eof(silent).empty());
  CHECK(seconds_since(start) >= 3.0);
}

TEST_CASE("the tutorial's kv service drains on SIGTERM: a client mid-conversation finishes, then exit 0",
          "[io][examples]") {
  tutorial_server kv("KV_SERVICE_BIN", {"--port", "0"});
  owned_fd client = kv.connect();
  CHECK(ask(client, "SET a 1\n") == "OK\n");

  kv.process.signal(SIGTERM);
  REQUIRE(kv.process.wait_for_line("draining connections"));
  CHECK(ask(client, "GET a\n") == "VALUE 1\n");
  CHECK_FALSE(kv.process.wait_exit(300ms));  // the server waits for its client

  client.close();
  CHECK(kv.process.wait_exit(10s) == 0);
}
