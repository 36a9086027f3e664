// The contract at its edges, on every backend: descriptors that are not
// there, peers that have gone, transfers past 32 bits, cancellation racing
// the last bytes, and more completions than the ring holds.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>

#include <switchboard/cancel.hpp>
#include <switchboard/net.hpp>
#include <switchboard/runtime.hpp>
#include <switchboard/time.hpp>

#include "contract.hpp"

using namespace switchboard;
using namespace switchboard::testing;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t four_gib = std::size_t{4} << 30;
// Past 4 GiB, and odd: no 32-bit count, signed or not, holds it.
constexpr std::size_t past_four_gib = four_gib + 4099;

// A file of `size` bytes in tmpfs where there is one (its holes cost no
// memory to read there), removed with the object.
class scratch_file {
 public:
  explicit scratch_file(std::size_t size) {
    const char* dir = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    path_ = std::string(dir) + "/switchboard-edges-XXXXXX";
    fd_ = ::mkstemp(path_.data());
    REQUIRE(fd_ >= 0);
    REQUIRE(::ftruncate(fd_, static_cast<off_t>(size)) == 0);
  }
  ~scratch_file() {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  int fd() const { return fd_; }

 private:
  std::string path_;
  int fd_ = -1;
};

// A blocking client that reads and discards until EOF, in a thread of its
// own; connected before the thread starts (the listener's backlog takes it).
class discarding_reader {
 public:
  explicit discarding_reader(std::uint16_t port) : fd_(raw_connect(port)), thread_([this] { run(); }) {}
  ~discarding_reader() {
    if (thread_.joinable()) thread_.join();
  }
  // Waits for EOF; the bytes it read.
  std::uint64_t total() {
    thread_.join();
    return total_;
  }

 private:
  void run() {
    std::vector<char> buf(1 << 20);
    for (;;) {
      const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
      if (n <= 0) break;
      total_ += static_cast<std::uint64_t>(n);
    }
    ::close(fd_);
  }
  int fd_;
  std::uint64_t total_ = 0;
  std::thread thread_;
};

// Address space of `size` bytes that costs no memory: reads see zeros.
// Asked for huge pages, reads map the huge zero page, 2 MiB per fault
// rather than 4 KiB: a send of 4 GiB from it takes 2,048 faults, not a million.
class zero_mapping {
 public:
  explicit zero_mapping(std::size_t size, int protection = PROT_READ) : size_(size) {
    data_ = ::mmap(nullptr, size, protection, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    REQUIRE(data_ != MAP_FAILED);
    ::madvise(data_, size, MADV_HUGEPAGE);
  }
  ~zero_mapping() { ::munmap(data_, size_); }
  std::byte* data() const { return static_cast<std::byte*>(data_); }

 private:
  void* data_;
  std::size_t size_;
};

enum class sigpipe_disposition { default_action, handler, blocked };

volatile sig_atomic_t sigpipes_handled = 0;

// In a child process: sends a file to a peer that has gone, with SIGPIPE set
// up as `disposition` says; exits 0 when the sends failed with an error, no
// handler ran and no SIGPIPE is left pending.
[[noreturn]] void send_file_to_gone_peer(sigpipe_disposition disposition) {
  struct sigaction action {};
  action.sa_handler = disposition == sigpipe_disposition::handler ? [](int) { sigpipes_handled = 1; } : SIG_DFL;
  ::sigaction(SIGPIPE, &action, nullptr);
  sigset_t pipe_only;
  ::sigemptyset(&pipe_only);
  ::sigaddset(&pipe_only, SIGPIPE);
  ::pthread_sigmask(disposition == sigpipe_disposition::blocked ? SIG_BLOCK : SIG_UNBLOCK, &pipe_only, nullptr);
  int code = 1;
  try {
    runtime rt(backend());
    code = rt.run([]() -> task<int> {
      scratch_file file(1 << 20);
      auto server = listener::bind(*endpoint::ip("127.0.0.1", 0)).value();
      auto client = co_await connect(server.local());
      auto accepted = co_await server.accept();
      if (!client || !accepted) co_return 10;
      client->close();
      co_await sleep_for(20ms);
      bool broken_pipe = false;
      for (int i = 0; i < 20 && !broken_pipe; ++i) {
        auto sent = co_await accepted->send_file(file.fd(), 0, 1 << 20);
        if (!sent) broken_pipe = sent.error() == std::errc::broken_pipe;
      }
      co_return broken_pipe ? 0 : 11;
    }());
  } catch (...) {
    code = 12;
  }
  sigset_t pending;
  ::sigpending(&pending);
  if (::sigismember(&pending, SIGPIPE)) code = 13;
  if (sigpipes_handled != 0) code = 14;
  std::_Exit(code);
}

}  // namespace

TEST_CASE("operations on a default, closed or moved-from stream answer bad_file_descriptor", "[contract][badfd]") {
  run_async([]() -> task<void> {
    scratch_file file(4096);
    auto pair = co_await make_pair();
    stream defaulted;
    stream moved_to = std::move(pair.server);
    pair.client.close();
    std::array<char, 16> buf;
    for (stream* s : {&defaulted, &pair.server, &pair.client}) {
      auto read = co_await s->read_some(buf);
      CHECK(read.error() == std::errc::bad_file_descriptor);
      auto exact = co_await s->read_exact(buf);
      CHECK(exact.error() == std::errc::bad_file_descriptor);
      auto lent = co_await s->receive();
      CHECK(lent.error() == std::errc::bad_file_descriptor);
      auto wrote = co_await s->write_some(as_bytes("x"));
      CHECK(wrote.error() == std::errc::bad_file_descriptor);
      auto all = co_await s->write_all("x");
      CHECK(all.error() == std::errc::bad_file_descriptor);
      auto sent = co_await s->send_file(file.fd(), 0, 4096);
      CHECK(sent.error() == std::errc::bad_file_descriptor);
      auto ready = co_await s->wait_readable();
      CHECK(ready.error() == std::errc::bad_file_descriptor);
    }
    listener no_listener;
    auto accepted = co_await no_listener.accept();
    CHECK(accepted.error() == std::errc::bad_file_descriptor);
    datagram_socket no_socket;
    std::array<std::byte, 16> datagram;
    auto got = co_await no_socket.receive_from(datagram);
    CHECK(got.error() == std::errc::bad_file_descriptor);
    auto put = co_await no_socket.send_to(as_bytes("x"), *endpoint::ip("127.0.0.1", 9));
    CHECK(put.error() == std::errc::bad_file_descriptor);
    CHECK(runtime::current().in_flight() == 0);
  }());
}

TEST_CASE("send_file to a peer that has gone fails with broken_pipe and raises no SIGPIPE, whatever the disposition",
          "[contract][sigpipe]") {
  for (auto disposition : {sigpipe_disposition::default_action, sigpipe_disposition::handler,
                           sigpipe_disposition::blocked}) {
    INFO("SIGPIPE " << (disposition == sigpipe_disposition::default_action ? "default"
                        : disposition == sigpipe_disposition::handler      ? "caught by a handler"
                                                                            : "blocked"));
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) send_file_to_gone_peer(disposition);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    if (WIFSIGNALED(status)) FAIL("killed by signal " << WTERMSIG(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
}

namespace {

// Sends past_four_gib bytes with `send(stream)` to a reader that discards
// them; both ends must count every byte.
template <class Send>
void send_past_four_gib(Send send) {
  run_async([](Send send) -> task<void> {
    auto server = listener::bind(*endpoint::ip("127.0.0.1", 0)).value();
    discarding_reader reader(server.local().port());
    auto accepted = co_await server.accept();
    REQUIRE(accepted);
    auto sent = co_await send(*accepted);
    REQUIRE(sent);
    CHECK(*sent == past_four_gib);
    accepted->close();
    CHECK(reader.total() == past_four_gib);
  }(send), 120s);
}

}  // namespace

TEST_CASE("write_all moves more than 4 GiB and counts every byte", "[contract][large]") {
  zero_mapping source(past_four_gib);
  send_past_four_gib([&](stream& s) {
    return s.write_all(std::span<const std::byte>(source.data(), past_four_gib));
  });
}

TEST_CASE("send_file moves more than 4 GiB and counts every byte", "[contract][large]") {
  scratch_file file(past_four_gib);
  send_past_four_gib([&](stream& s) { return s.send_file(file.fd(), 0, past_four_gib); });
}

TEST_CASE("read_exact counts past 4 GiB", "[contract][large]") {
  // Only the last page of the buffer is memory: the transfer is put at
  // 4 GiB in and finished by the peer's last 100 bytes.
  run_async([]() -> task<void> {
    zero_mapping space(four_gib + 4096, PROT_NONE);
    REQUIRE(::mprotect(space.data() + four_gib, 4096, PROT_READ | PROT_WRITE) == 0);
    auto pair = co_await make_pair();
    const std::string tail = pattern(100);
    auto op = pair.server.read_exact(std::span<std::byte>(space.data(), four_gib + 100));
    op.done = four_gib;
    task_group writer;
    writer.spawn([](stream& s, const std::string& tail) -> task<void> {
      co_await sleep_for(10ms);
      auto sent = co_await s.write_all(tail);
      REQUIRE(sent);
    }(pair.client, tail));
    auto got = co_await with_timeout(5s, std::move(op));
    REQUIRE(got);
    CHECK(*got == four_gib + 100);
    CHECK(std::memcmp(space.data() + four_gib, tail.data(), tail.size()) == 0);
    co_await writer.join();
  }());
}

namespace {

// How the cancel of a read_exact(20) meets the peer's bytes.
enum class meeting {
  all_there,   // all 20 bytes are there when the read starts; the cancel comes in the same turn
  half_there,  // 10 are there; the cancel comes in the same turn
  racing,      // the read waits; the 20 bytes and the cancel come in the same step
};

// Runs one read_exact(20) that `how` cancels, and checks that every byte the
// peer sent was either reported by it or is still in the socket.
task<void> cancel_read_exact(connected_pair& pair, meeting how, int& completed) {
  const std::string message = "0123456789abcdefghij";
  const std::size_t early = how == meeting::all_there ? 20 : how == meeting::half_there ? 10 : 0;
  const std::size_t sent = how == meeting::half_there ? 10 : 20;
  if (early > 0) REQUIRE(::send(pair.client.native_handle(), message.data(), early, 0) == static_cast<ssize_t>(early));
  co_await sleep_for(1ms);  // the bytes are in the server's socket now
  std::array<char, 20> buf{};
  seen saw;
  cancel_scope scope(co_await this_scope());
  task_group group(&scope);  // members start in order, in one loop turn
  group.spawn([](stream& s, std::span<char> buf, seen& out) -> task<void> {
    auto op = s.read_exact(buf);
    auto got = co_await op;
    ++out.resumed;
    out.transferred = op.transferred();
    if (!got) out.error = got.error();
  }(pair.server, buf, saw));
  if (how == meeting::racing) {
    co_await sleep_for(1ms);
    REQUIRE(saw.resumed == 0);
    REQUIRE(::send(pair.client.native_handle(), message.data(), message.size(), 0) == 20);
    scope.cancel();
  } else {
    group.spawn([](cancel_scope& scope) -> task<void> {
      scope.cancel();
      co_return;
    }(scope));
  }
  co_await group.join();
  REQUIRE(saw.resumed == 1);
  std::string got(buf.data(), saw.transferred);
  if (!saw.error) {
    ++completed;
    CHECK(saw.transferred == 20);
  } else {
    CHECK(saw.error == std::errc::operation_canceled);
    std::array<char, 20> rest{};
    auto more = co_await with_timeout(1s, pair.server.read_exact(std::span(rest).first(sent - saw.transferred)));
    REQUIRE(more);
    got.append(rest.data(), *more);
  }
  CHECK(got == message.substr(0, got.size()));
  CHECK(got.size() == sent);
}

}  // namespace

TEST_CASE("a cancelled read_exact reports the bytes it took, and none is lost", "[contract][cancel]") {
  // On io_uring a read started and cancelled in one turn is submitted before
  // its cancel: bytes already there complete it first. Whichever wins, the
  // bytes the read took out of the socket are reported and the rest stay.
  run_async([]() -> task<void> {
    auto pair = co_await make_pair();
    for (meeting how : {meeting::all_there, meeting::half_there, meeting::racing}) {
      int completed = 0;
      for (int round = 0; round < 20; ++round) co_await cancel_read_exact(pair, how, completed);
      if (how == meeting::all_there && backend() == backend_kind::uring) CHECK(completed == 20);
    }
  }(), 60s);
}

TEST_CASE("cancelling 20,000 reads in one scope, more completions than the ring holds, resumes each once",
          "[contract][cancel]") {
  run_async([]() -> task<void> {
    auto pair = co_await make_pair();
    constexpr int count = 20'000;
    int resumed = 0;
    int cancelled = 0;
    task_group readers;
    for (int i = 0; i < count; ++i) {
      readers.spawn([](stream& s, int& resumed, int& cancelled) -> task<void> {
        std::array<char, 8> buf;
        auto got = co_await s.read_some(buf);
        ++resumed;
        if (!got && got.error() == std::errc::operation_canceled) ++cancelled;
      }(pair.server, resumed, cancelled));
    }
    co_await sleep_for(100ms);
    CHECK(runtime::current().in_flight() == count);
    readers.cancel();
    co_await readers.join();
    CHECK(resumed == count);
    CHECK(cancelled == count);
    CHECK(runtime::current().in_flight() == 0);
  }(), 60s);
}
