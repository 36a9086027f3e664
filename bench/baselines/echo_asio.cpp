// echo-asio: the same echo written the way a user of standalone Asio would:
// C++20 coroutines (awaitable, co_spawn, use_awaitable), one io_context run
// on one thread. It is the established library the runtime is compared with.
// Errors come back through redirect_error, so EOF costs no exception.
//
// Run: echo-asio [--host 127.0.0.1] [--port 0]
// Try it: nc 127.0.0.1 PORT
// Asio 1.22 sees clang's coroutines only through the old Coroutines TS macro
// (__cpp_coroutines); clang 14 in C++20 mode has the standard ones instead,
// which Asio already uses with g++.
#if defined(__clang__) && defined(__cpp_impl_coroutine) && !defined(ASIO_HAS_CO_AWAIT)
#define ASIO_HAS_CO_AWAIT 1
#endif
#include <asio.hpp>

#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

using asio::ip::tcp;

namespace {

// The buffer lives in the coroutine frame: 16 KiB per connection, as the
// C baselines' per-read buffer.
asio::awaitable<void> echo(tcp::socket socket) {
  char data[16384];
  for (;;) {
    asio::error_code ec;
    const std::size_t n = co_await socket.async_read_some(
        asio::buffer(data), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;  // EOF or reset
    co_await asio::async_write(socket, asio::buffer(data, n),
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
  }
}

asio::awaitable<void> accept_loop(tcp::acceptor acceptor) {
  for (;;) {
    asio::error_code ec;
    tcp::socket socket =
        co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (!ec) asio::co_spawn(acceptor.get_executor(), echo(std::move(socket)), asio::detached);
  }
}

[[noreturn]] void usage_error(const char* prog, const std::string& why) {
  std::fprintf(stderr, "%s: %s (try --help)\n", prog, why.c_str());
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  unsigned port = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help") {
      std::printf("usage: %s [--host IPV4] [--port P]   (port 0 = any free port)\n", argv[0]);
      return 0;
    } else if (arg == "--host" && i + 1 < argc) {
      host = argv[++i];
    } else if (arg == "--port" && i + 1 < argc) {
      const std::string_view text = argv[++i];
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
      if (ec != std::errc{} || end != text.data() + text.size() || port > 65535) {
        usage_error(argv[0], "--port: expected 0 to 65535, got '" + std::string(text) + "'");
      }
    } else {
      usage_error(argv[0], "unexpected argument '" + std::string(arg) + "'");
    }
  }

  asio::error_code ec;
  const auto address = asio::ip::make_address_v4(host, ec);
  if (ec) usage_error(argv[0], "--host: expected an IPv4 address, got '" + host + "'");

  std::signal(SIGPIPE, SIG_IGN);
  asio::io_context io(1);  // concurrency hint 1: one thread, so no locking inside
  tcp::acceptor acceptor(io);
  const tcp::endpoint wanted(address, static_cast<unsigned short>(port));
  acceptor.open(wanted.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(wanted, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    std::fprintf(stderr, "%s: cannot listen on %s:%u: %s\n", argv[0], host.c_str(), port,
                 ec.message().c_str());
    return 1;
  }
  const tcp::endpoint bound = acceptor.local_endpoint();
  std::fprintf(stderr, "listening on %s:%u (tcp, baseline asio)\n",
               bound.address().to_string().c_str(), static_cast<unsigned>(bound.port()));
  std::fflush(stderr);

  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&io](const asio::error_code&, int) { io.stop(); });
  asio::co_spawn(io, accept_loop(std::move(acceptor)), asio::detached);
  io.run();
  return 0;
}
