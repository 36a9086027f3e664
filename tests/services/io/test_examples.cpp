// The programs in examples/ as a reader runs them, on the backend under test:
// select-demo with every kind of standard input, timeout-demo's deadline on a
// whole line, and the tutorial's hello service answering raw sockets.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <string_view>
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
