#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <string>

#include <switchboard/log.hpp>

using namespace switchboard;
using namespace std::chrono_literals;

namespace {

// A pipe whose read end this test drains when it likes.
struct pipe_ends {
  int read = -1;
  int write = -1;
  pipe_ends() {
    int ends[2];
    REQUIRE(::pipe2(ends, O_CLOEXEC) == 0);
    read = ends[0];
    write = ends[1];
  }
  ~pipe_ends() {
    ::close(read);
    ::close(write);
  }
  std::string drain() const {
    std::string all;
    char buf[65536];
    pollfd p{read, POLLIN, 0};
    while (::poll(&p, 1, 0) == 1) {
      const ssize_t n = ::read(read, buf, sizeof buf);
      if (n <= 0) break;
      all.append(buf, static_cast<std::size_t>(n));
    }
    return all;
  }
};

}  // namespace

TEST_CASE("a log line is cut at 512 bytes, whatever went into it", "[unit][log]") {
  pipe_ends pipe;
  log_sink sink(pipe.write);
  sink.never_block();
  std::array<char, log_sink::max_line_length> line;
  const std::string forged(100'000, 'f');
  CHECK(sink.event(format_log_line(line, "name: {}", forged)));
  const std::string written = pipe.drain();
  CHECK(written.size() == log_sink::max_line_length + 1);
  CHECK(written.starts_with("name: fff"));
  CHECK(written.ends_with("fff...\n"));
}

TEST_CASE("a full log pipe drops lines without waiting, and leaves the shared description blocking",
          "[unit][log]") {
  pipe_ends pipe;
  log_sink sink(pipe.write);
  sink.never_block();
  const std::string line(200, 'x');
  std::size_t written = 0;
  // Far more than the pipe holds: a blocking write would hang this test.
  for (int i = 0; i < 10'000; ++i) written += sink.event(line);
  CHECK(written < 10'000);
  CHECK(sink.dropped() == 10'000 - written);
  CHECK((::fcntl(pipe.write, F_GETFL) & O_NONBLOCK) == 0);
  // Whole lines only, never a piece of one.
  const std::string held = pipe.drain();
  CHECK(held.size() == written * (line.size() + 1));
  // With room again, the next line goes out after a count of what was lost.
  CHECK(sink.event("after"));
  CHECK(pipe.drain() ==
        "log: " + std::to_string(10'000 - written) + " lines dropped (over --log-rate, or stderr was full)\n"
        "after\n");
}

TEST_CASE("events over the rate are dropped and counted; notices are never rate-limited", "[unit][log]") {
  pipe_ends pipe;
  log_sink sink(pipe.write);
  sink.limit_rate(10);
  const auto t0 = log_sink::clock::now();
  std::size_t written = 0;
  for (int i = 0; i < 100; ++i) written += sink.event("flood", t0);
  CHECK(written == 10);
  CHECK(sink.dropped() == 90);
  CHECK(sink.notice("listening on somewhere"));
  // A second later there is room for the next ten.
  written = 0;
  for (int i = 0; i < 100; ++i) written += sink.event("flood", t0 + 1s);
  CHECK(written == 10);
  CHECK(sink.dropped() == 180);
}
