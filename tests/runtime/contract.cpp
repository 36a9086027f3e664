#include "contract.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <chrono>

#include <catch2/catch.hpp>
#include <switchboard/time.hpp>

namespace switchboard::testing {

using namespace std::chrono_literals;

namespace {

template <class T>
void record(seen& out, const result<T>& got) {
  ++out.resumed;
  if (!got) out.error = got.error();
}

// Everything `client` receives until EOF; fails after `limit`.
task<std::string> read_to_end(stream& client, std::chrono::milliseconds limit) {
  std::string got;
  std::array<char, 65536> buf;
  for (;;) {
    auto n = co_await with_timeout(limit, client.read_some(buf));
    REQUIRE(n);
    if (*n == 0) co_return got;
    got.append(buf.data(), *n);
  }
}

void shrink_buffers(connected_pair& pair) {
  // Small socket buffers, so that a write of a few MiB stops part of the
  // way; the reader's still exceeds loopback's MSS (64 KiB), so that its
  // window reopens as soon as it reads instead of at the next zero-window probe.
  const int send_buffer = 16 * 1024;
  const int receive_buffer = 128 * 1024;
  ::setsockopt(pair.server.native_handle(), SOL_SOCKET, SO_SNDBUF, &send_buffer, sizeof send_buffer);
  ::setsockopt(pair.client.native_handle(), SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
}

}  // namespace

const char* name(state s) {
  switch (s) {
    case state::at_once: return "completing at once";
    case state::parked_read: return "a parked read";
    case state::parked_accept: return "a parked accept";
    case state::connecting: return "a connect in progress";
    case state::partial_write: return "a write_all part of the way";
    case state::mid_splice: return "a send_file part of the way";
    case state::starved: return "a receive starved of buffers";
    case state::waiting_ready: return "a readiness wait";
  }
  return "?";
}

std::string pattern(std::size_t size) {
  std::string bytes(size, '\0');
  for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>((i * 131 + i / 251) & 0xff);
  return bytes;
}

std::vector<int> fill_numbers_below(int fd) {
  std::vector<int> opened;
  for (;;) {
    const int next = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    REQUIRE(next >= 0);
    if (next > fd) {
      ::close(next);
      return opened;
    }
    opened.push_back(next);
  }
}

void close_all(const std::vector<int>& fds) {
  for (int fd : fds) ::close(fd);
}

std::size_t open_fds_now() { return tools::open_fds(::getpid()); }

task<std::unique_ptr<scene>> scene::make() {
  std::unique_ptr<scene> sc(new scene);
  sc->at_once_ = co_await make_pair();
  auto ready = co_await sc->at_once_.client.write_all("ready");
  REQUIRE(ready);
  sc->read_ = co_await make_pair();
  sc->write_ = co_await make_pair();
  shrink_buffers(sc->write_);
  sc->splice_ = co_await make_pair();
  shrink_buffers(sc->splice_);
  sc->ready_ = co_await make_pair();
  sc->starved_ = co_await make_pair();
  auto waiting = co_await sc->starved_.client.write_all("s");
  REQUIRE(waiting);

  // Lend out every buffer of the pool, so that the next receive starves.
  for (std::size_t i = 0; i < scene_receive_buffers; ++i) {
    auto holder = co_await make_pair();
    auto sent = co_await holder.client.write_all("h");
    REQUIRE(sent);
    auto chunk = co_await with_timeout(2s, holder.server.receive());
    REQUIRE(chunk);
    REQUIRE(chunk->size() == 1);
    sc->held_.push_back(std::move(*chunk));
    sc->holders_.push_back(std::move(holder));
  }

  sc->idle_ = listener::bind(*endpoint::ip("127.0.0.1", 0)).value();
  sc->full_ = listener::bind(*endpoint::ip("127.0.0.1", 0), 0).value();
  auto queued = co_await connect(sc->full_.local());
  REQUIRE(queued);
  sc->queued_ = std::move(*queued);
  sc->connecting_ = unique_fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  REQUIRE(sc->connecting_);

  sc->payload_ = pattern(payload_size);
  const char* shm = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  sc->file_path_ = std::string(shm) + "/switchboard-contract-XXXXXX";
  sc->file_ = ::mkstemp(sc->file_path_.data());
  REQUIRE(sc->file_ >= 0);
  REQUIRE(::write(sc->file_, sc->payload_.data(), sc->payload_.size()) ==
          static_cast<ssize_t>(sc->payload_.size()));
  co_return sc;
}

scene::~scene() {
  if (file_ >= 0) {
    ::close(file_);
    ::unlink(file_path_.c_str());
  }
}

task<void> scene::operate(state s, seen& out) {
  std::array<char, 64> buf{};
  switch (s) {
    case state::at_once: {
      auto got = co_await at_once_.server.read_some(buf);
      record(out, got);
      if (got) out.bytes.assign(buf.data(), *got);
      break;
    }
    case state::parked_read: {
      auto got = co_await read_.server.read_some(buf);
      record(out, got);
      if (got) out.bytes.assign(buf.data(), *got);
      break;
    }
    case state::parked_accept: {
      auto got = co_await idle_.accept();
      record(out, got);
      break;
    }
    case state::connecting: {
      detail::connect_operation op;
      op.code = detail::op_code::connect;
      op.fd = connecting_.get();
      op.target = full_.local();
      auto got = co_await op;
      record(out, got);
      break;
    }
    case state::partial_write: {
      auto op = write_.server.write_all(payload_);
      auto got = co_await op;
      record(out, got);
      out.transferred = op.transferred();
      break;
    }
    case state::mid_splice: {
      auto op = splice_.server.send_file(file_, 0, payload_size);
      auto got = co_await op;
      record(out, got);
      out.transferred = op.transferred();
      break;
    }
    case state::starved: {
      auto got = co_await starved_.server.receive();
      record(out, got);
      if (got) out.bytes.assign(reinterpret_cast<const char*>(got->bytes().data()), got->size());
      break;
    }
    case state::waiting_ready: {
      auto got = co_await ready_.server.wait_readable();
      record(out, got);
      break;
    }
  }
}

void scene::close(state s) {
  switch (s) {
    case state::at_once: at_once_.server.close(); break;
    case state::parked_read: read_.server.close(); break;
    case state::parked_accept: idle_.close(); break;
    case state::connecting: connecting_.reset(); break;
    case state::partial_write: write_.server.close(); break;
    case state::mid_splice: splice_.server.close(); break;
    case state::starved: starved_.server.close(); break;
    case state::waiting_ready: ready_.server.close(); break;
  }
}

task<void> scene::verify(state s, const seen& out) {
  if (s == state::partial_write || s == state::mid_splice) {
    // Closed after the operation ended, so that the peer reads to EOF.
    close(s);
    stream& client = s == state::partial_write ? write_.client : splice_.client;
    const std::string got = co_await read_to_end(client, 5s);
    INFO(name(s) << ": reported " << out.transferred << " bytes moved");
    CHECK(out.transferred > 0);
    CHECK(out.transferred < payload_size);
    CHECK(got.size() == out.transferred);
    CHECK(got == std::string_view(payload_).substr(0, got.size()));
  }
  if (s == state::starved && starved_.server) {
    // The byte that was waiting for a buffer is still there for the next receive.
    held_.clear();
    auto again = co_await with_timeout(2s, starved_.server.receive());
    REQUIRE(again);
    CHECK(std::string(reinterpret_cast<const char*>(again->bytes().data()), again->size()) == "s");
  }
}

}  // namespace switchboard::testing
