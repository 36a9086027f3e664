// The lifetime rule as a contract, tried on every backend: this program runs
// once per backend (meson test --suite backend; --backend select|epoll|uring),
// in the plain and the sanitizer builds.
//
// THE RULE (docs/architecture.md): no frame, buffer or descriptor the kernel
// may still use is freed or reused. Each case holds an operation in a state a
// backend can hold it in, ends it one way (cancel, close, a cancelled group,
// the runtime shutting down), and checks what the coroutine saw, that it
// resumed exactly once, that no other connection's bytes reached it, and that
// nothing stays in flight or open afterwards.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <switchboard/cancel.hpp>
#include <switchboard/net.hpp>
#include <switchboard/runtime.hpp>
#include <switchboard/time.hpp>

#include "contract.hpp"

using namespace switchboard;
using namespace switchboard::testing;
using namespace std::chrono_literals;

namespace {

// Long enough for an operation to reach the backend's waiting state.
constexpr auto settle = 50ms;

// Joins `group`; when a member never resumes, the contract is broken and no
// frame can be freed safely, so the test program stops here.
task<void> join_or_stop(task_group& group, const char* what) {
  const bool joined = co_await with_timeout(5s, group.join());
  if (!joined) {
    std::fprintf(stderr, "lifetime contract broken: %s never resumed\n", what);
    std::fflush(stderr);
    std::_Exit(3);
  }
}

enum class ending { cancel, close };

// Holds the operation of `s` waiting, ends it by `how`, checks what it saw.
void end_one(state s, ending how) {
  INFO(name(s) << (how == ending::cancel ? ", cancelled" : ", its descriptor closed"));
  const std::size_t fds_before = open_fds_now();
  run_async([](state s, ending how) -> task<void> {
    auto sc = co_await scene::make();
    auto newcomers = listener::bind(*endpoint::ip("127.0.0.1", 0)).value();
    seen saw;
    cancel_scope scope(co_await this_scope());
    task_group group(&scope);
    auto end = [&] { how == ending::cancel ? scope.cancel() : sc->close(s); };
    if (s == state::at_once) end();
    group.spawn(sc->operate(s, saw));
    if (s != state::at_once) {
      co_await sleep_for(settle);
      REQUIRE(saw.resumed == 0);
      CHECK(runtime::current().in_flight() >= 1);
      end();
    }
    // A new connection takes the lowest free number (the closed one, when
    // it is), and bytes arrive on it at once: none may reach the old operation.
    auto newcomer = co_await connect(newcomers.local());
    REQUIRE(newcomer);
    auto welcomed = co_await newcomers.accept();
    REQUIRE(welcomed);
    auto secret = co_await welcomed->write_all("SECRET-OF-NEW-CLIENT");
    REQUIRE(secret);
    co_await join_or_stop(group, name(s));
    CHECK(saw.resumed == 1);
    CHECK(saw.bytes.empty());
    CHECK(saw.error == (how == ending::cancel ? std::errc::operation_canceled
                                              : std::errc::bad_file_descriptor));
    co_await sc->verify(s, saw);
    std::array<char, 20> got;
    auto kept = co_await with_timeout(2s, newcomer->read_exact(got));
    REQUIRE(kept);
    CHECK(std::string_view(got.data(), got.size()) == "SECRET-OF-NEW-CLIENT");
    CHECK(runtime::current().in_flight() == 0);
  }(s, how), 20s, scene_options());
  CHECK(open_fds_now() <= fds_before);
}

// `count` connected pairs; the client of pair i has sent i's digits.
task<std::vector<connected_pair>> pairs_that_sent_their_number(int count) {
  std::vector<connected_pair> pairs;
  for (int i = 0; i < count; ++i) {
    pairs.push_back(co_await make_pair());
    auto sent = co_await pairs.back().client.write_all(std::to_string(i));
    REQUIRE(sent);
  }
  co_return pairs;
}

// What the receivers of those numbers saw; `held` keeps the buffers they got.
struct receipts {
  std::vector<buffer> held;
  int served = 0;
  int failed = 0;
};

// One receive() on `s`, which must bring `i`'s digits.
task<void> receive_number(stream& s, int i, receipts& out) {
  auto got = co_await s.receive();
  if (!got) {
    ++out.failed;
    co_return;
  }
  CHECK(std::string(reinterpret_cast<const char*>(got->bytes().data()), got->size()) == std::to_string(i));
  ++out.served;
  out.held.push_back(std::move(*got));
}

}  // namespace

TEST_CASE("a cancelled operation resumes once with operation_canceled, in every state", "[contract][cancel]") {
  for (state s : every_state) end_one(s, ending::cancel);
}

TEST_CASE("closing the descriptor under an operation resumes it once with bad_file_descriptor, in every state",
          "[contract][close]") {
  for (state s : every_state) end_one(s, ending::close);
}

TEST_CASE("a task group cancelled while its members wait in every state is joined and destroyed safely",
          "[contract][group]") {
  const std::size_t fds_before = open_fds_now();
  run_async([]() -> task<void> {
    auto sc = co_await scene::make();
    std::array<seen, std::size(every_state)> saw;
    {
      task_group group(co_await this_scope());
      for (std::size_t i = 1; i < std::size(every_state); ++i) {
        group.spawn(sc->operate(every_state[i], saw[i]));
      }
      co_await sleep_for(settle);
      for (const seen& one : saw) REQUIRE(one.resumed == 0);
      group.cancel();
      co_await join_or_stop(group, "a member of a cancelled group");
    }
    for (std::size_t i = 1; i < std::size(every_state); ++i) {
      INFO(name(every_state[i]));
      CHECK(saw[i].resumed == 1);
      CHECK(saw[i].error == std::errc::operation_canceled);
      co_await sc->verify(every_state[i], saw[i]);
    }
    CHECK(runtime::current().in_flight() == 0);
  }(), 20s, scene_options());
  CHECK(open_fds_now() <= fds_before);
}

TEST_CASE("a runtime that ends while spawned tasks wait in every state resumes each once", "[contract][shutdown]") {
  const std::size_t fds_before = open_fds_now();
  std::array<seen, std::size(every_state)> saw;
  {
    std::unique_ptr<scene> sc;
    runtime rt(backend(), scene_options());
    rt.run([](std::unique_ptr<scene>& sc, std::array<seen, std::size(every_state)>& saw) -> task<void> {
      sc = co_await scene::make();
      for (std::size_t i = 1; i < std::size(every_state); ++i) {
        runtime::current().spawn(sc->operate(every_state[i], saw[i]), name(every_state[i]));
      }
      co_await sleep_for(settle);
      for (const seen& one : saw) REQUIRE(one.resumed == 0);
      // Returning here: the runtime cancels the spawned tasks and drains them.
    }(sc, saw));
    CHECK(rt.in_flight() == 0);
    sc.reset();  // closes the scene's descriptors while the runtime still lives
  }
  for (std::size_t i = 1; i < std::size(every_state); ++i) {
    INFO(name(every_state[i]));
    CHECK(saw[i].resumed == 1);
    CHECK(saw[i].error == std::errc::operation_canceled);
  }
  CHECK(open_fds_now() <= fds_before);
}

TEST_CASE("starved receives whose streams close never read the bytes of the connections that reuse their numbers",
          "[contract][starved]") {
  // Found on io_uring: a starved receive ignored cancel and close, and was
  // later submitted again on whatever connection had the same number.
  constexpr std::size_t buffers = 16;
  constexpr int victims = 6;
  const std::size_t fds_before = open_fds_now();
  run_async([]() -> task<void> {
    auto server = listener::bind(*endpoint::ip("127.0.0.1", 0)).value();
    std::vector<connected_pair> holders;
    std::vector<buffer> held;
    for (std::size_t i = 0; i < buffers; ++i) {
      holders.push_back(co_await make_pair());
      auto sent = co_await holders.back().client.write_all("h");
      REQUIRE(sent);
      auto chunk = co_await with_timeout(2s, holders.back().server.receive());
      REQUIRE(chunk);
      held.push_back(std::move(*chunk));
    }

    std::vector<connected_pair> old_pairs;
    std::array<seen, victims> old_saw;
    task_group old_receivers;
    for (int i = 0; i < victims; ++i) {
      old_pairs.push_back(co_await make_pair());
      auto sent = co_await old_pairs.back().client.write_all("old");
      REQUIRE(sent);
      old_receivers.spawn([](stream& s, seen& out) -> task<void> {
        auto got = co_await s.receive();
        ++out.resumed;
        if (got) out.bytes.assign(reinterpret_cast<const char*>(got->bytes().data()), got->size());
        else out.error = got.error();
      }(old_pairs.back().server, old_saw[i]));
    }
    co_await sleep_for(settle);
    for (const seen& one : old_saw) REQUIRE(one.resumed == 0);  // they wait, they do not fail

    std::vector<int> numbers;
    for (auto& pair : old_pairs) {
      numbers.push_back(pair.server.native_handle());
      pair.server.close();
    }
    co_await join_or_stop(old_receivers, "a starved receive whose stream closed");

    // New connections take the freed numbers; their clients send secrets.
    std::vector<stream> new_clients;
    std::vector<stream> new_servers;
    for (int i = 0; i < victims; ++i) {
      auto client = co_await connect(server.local());
      REQUIRE(client);
      auto secret = co_await client->write_all("SECRET-OF-NEW-CLIENT");
      REQUIRE(secret);
      auto accepted = co_await server.accept();
      REQUIRE(accepted);
      new_clients.push_back(std::move(*client));
      new_servers.push_back(std::move(*accepted));
    }
    held.clear();  // buffers come back: nothing old may be submitted again
    for (stream& s : new_servers) {
      auto got = co_await with_timeout(2s, s.receive());
      REQUIRE(got);
      CHECK(std::string(reinterpret_cast<const char*>(got->bytes().data()), got->size()) ==
            "SECRET-OF-NEW-CLIENT");
    }
    for (const seen& one : old_saw) {
      CHECK(one.resumed == 1);
      CHECK(one.bytes.empty());
      CHECK(one.error == std::errc::bad_file_descriptor);
    }
    CHECK(runtime::current().in_flight() == 0);
  }(), 20s, runtime_options{.receive_buffers = buffers});
  CHECK(open_fds_now() <= fds_before);
}

TEST_CASE("a full receive pool makes receives wait, then serves every one", "[contract][starved]") {
  // The pool is the bound on receive memory on every backend; running out
  // is a wait, never an error the service has to handle.
  constexpr std::size_t buffers = 8;
  run_async([]() -> task<void> {
    const int receivers_count = 40;
    auto pairs = co_await pairs_that_sent_their_number(receivers_count);
    receipts got;
    task_group receivers;
    for (int i = 0; i < receivers_count; ++i) receivers.spawn(receive_number(pairs[i].server, i, got));
    co_await sleep_for(settle);
    CHECK(got.served == static_cast<int>(buffers));
    CHECK(got.failed == 0);
    while (got.served + got.failed < receivers_count) {
      got.held.clear();
      co_await sleep_for(10ms);
    }
    co_await receivers.join();
    CHECK(got.served == receivers_count);
    CHECK(got.failed == 0);
  }(), 20s, runtime_options{.receive_buffers = buffers});
}

TEST_CASE("more receives finding bytes at once than io_uring's buffer ring offers are all served",
          "[contract][starved]") {
  // io_uring's buffer ring offers the kernel 64 chunks at first: 200
  // receives that find their bytes in one submission empty it, and those
  // that found it empty are served from the pool's further chunks.
  run_async([]() -> task<void> {
    const int receivers_count = 200;
    auto pairs = co_await pairs_that_sent_their_number(receivers_count);
    receipts got;
    task_group receivers;
    for (int i = 0; i < receivers_count; ++i) receivers.spawn(receive_number(pairs[i].server, i, got));
    co_await receivers.join();
    CHECK(got.failed == 0);
    CHECK(got.served == receivers_count);
    CHECK(got.held.size() == static_cast<std::size_t>(receivers_count));
  }(), 20s);
}

TEST_CASE("a close queued behind a read in the same turn never hands the read a new connection's bytes",
          "[contract][reuse]") {
  // On io_uring a queued SQE names its descriptor by number until it is
  // submitted: closing must not let an accept earlier in the same batch give
  // that number to a new connection first.
  run_async([]() -> task<void> {
    auto server = listener::bind(*endpoint::ip("127.0.0.1", 0)).value();
    auto pair = co_await make_pair();
    const int old_number = pair.server.native_handle();
    const std::vector<int> fillers = fill_numbers_below(old_number);
    // A second client connects and sends before it is accepted.
    auto client = co_await connect(server.local());
    REQUIRE(client);
    auto secret = co_await client->write_all("SECRET-OF-NEW-CLIENT");
    REQUIRE(secret);

    seen old_saw;
    stream accepted;
    task_group same_turn;  // its members start in this order, in one loop turn
    same_turn.spawn([](listener& l, stream& out) -> task<void> {
      auto got = co_await l.accept();
      REQUIRE(got);
      out = std::move(*got);
    }(server, accepted));
    same_turn.spawn([](stream& s, seen& out) -> task<void> {
      std::array<char, 64> buf;
      auto got = co_await s.read_some(buf);
      ++out.resumed;
      if (got) out.bytes.assign(buf.data(), *got);
      else out.error = got.error();
    }(pair.server, old_saw));
    same_turn.spawn([](stream& s) -> task<void> {
      s.close();
      co_return;
    }(pair.server));
    co_await join_or_stop(same_turn, "a read whose stream closed in its own turn");
    close_all(fillers);

    CHECK(old_saw.resumed == 1);
    CHECK(old_saw.bytes.empty());
    CHECK(old_saw.error == std::errc::bad_file_descriptor);
    std::array<char, 64> buf;
    auto got = co_await with_timeout(2s, accepted.read_exact(std::span(buf).first(20)));
    REQUIRE(got);
    CHECK(std::string(buf.data(), 20) == "SECRET-OF-NEW-CLIENT");
    CHECK(runtime::current().in_flight() == 0);
  }());
}

TEST_CASE("a number closed behind the runtime's back and reused ends the old wait and serves the new stream",
          "[contract][reuse]") {
  // Closing a descriptor an operation waits on without the runtime
  // (a raw ::close) is unsupported; what the runtime does guarantee is that a
  // new descriptor it is handed under that number is watched afresh, and
  // that the old wait ends then instead of seeing the new file's events.
  run_async([]() -> task<void> {
    auto server = listener::bind(*endpoint::ip("127.0.0.1", 0)).value();
    auto client = co_await connect(server.local());  // accepted once the number is free
    REQUIRE(client);
    int raw[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, raw) == 0);
    const std::vector<int> fillers = fill_numbers_below(raw[0]);
    seen old_saw;
    task_group waiting;
    waiting.spawn([](int fd, seen& out) -> task<void> {
      auto got = co_await wait_ready(fd, POLLIN);
      ++out.resumed;
      if (!got) out.error = got.error();
    }(raw[0], old_saw));
    co_await sleep_for(settle);
    REQUIRE(old_saw.resumed == 0);
    const int old_number = raw[0];
    ::close(raw[0]);  // its peer stays open: nothing happens on the old file
    if (backend() == backend_kind::select) {
      // select() reports the bad descriptor: the wait fails instead of spinning.
      for (int i = 0; i < 100 && old_saw.resumed == 0; ++i) co_await sleep_for(10ms);
      CHECK(old_saw.resumed == 1);
    }

    auto accepted = co_await server.accept();
    REQUIRE(accepted);
    CHECK(accepted->native_handle() == old_number);
    co_await join_or_stop(waiting, "a wait on a number closed behind the runtime's back");
    CHECK(old_saw.resumed == 1);
    CHECK(old_saw.error == std::errc::bad_file_descriptor);

    task_group peer;
    peer.spawn([](stream& c) -> task<void> {
      co_await sleep_for(20ms);  // the read below must wait for readiness on the new file
      auto sent = co_await c.write_all("new");
      REQUIRE(sent);
    }(*client));
    std::array<char, 8> buf;
    auto got = co_await with_timeout(2s, accepted->read_some(buf));
    REQUIRE(got);
    CHECK(std::string(buf.data(), *got) == "new");
    co_await peer.join();
    close_all(fillers);
    ::close(raw[1]);
  }());
}
