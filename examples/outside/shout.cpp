// A line-based service written against the installed switchboard headers
// only: it answers every line a client sends with the line in capitals.
// The arguments are read by hand, so that no CLI library is needed.
//
//   shout BACKEND [PORT]     BACKEND: select, epoll, uring or auto; PORT: 0 (the default) picks a free one
//   Try it: shout epoll 7072, then socat - TCP:127.0.0.1:7072
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <string>

#include <switchboard/port.hpp>
#include <switchboard/program.hpp>
#include <switchboard/server.hpp>

using namespace switchboard;

task<void> shout(connection& client) {
  for (;;) {
    auto line = co_await client.read_line(256);  // fails after the idle timeout, at EOF, or when too long
    if (!line) {
      if (line.error() == read_errc::too_long) (void)co_await client.write_all("error: line too long\n");
      co_return;
    }
    std::string reply(*line);
    std::ranges::transform(reply, reply.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    reply += '\n';
    auto sent = co_await client.write_all(reply);
    if (!sent) co_return;  // not `!co_await ...`: g++ 12 miscompiles a unary operator on a co_await
  }
}

int main(int argc, char** argv) {
  server_state server;
  server.service = "shout";
  auto port = parse_port(argc == 3 ? argv[2] : "0");
  if (argc < 2 || argc > 3 || !port) {
    std::fputs("usage: shout select|epoll|uring|auto [PORT]\n", stderr);
    return exit_usage;
  }
  server.options.backend = argv[1];
  server.options.port = *port;
  return run_on_backend(server.options, [&] { return serve_stream(server, shout); });
}
