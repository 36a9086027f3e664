// The line-based service of docs/writing-a-service.md, a key-value store its clients share:
// SET key value -> OK, GET key -> VALUE value or NOT FOUND, over 256 bytes -> ERR line too long.
//   kv-service --port 7071 --backend epoll      Try it: nc 127.0.0.1 7071
#include <map>
#include <string>
#include <string_view>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <switchboard/cli11.hpp>
#include <switchboard/server.hpp>

using namespace switchboard;
using store = std::map<std::string, std::string, std::less<>>;
constexpr std::size_t max_keys = 10'000;  // clients may not fill the server's memory

std::string answer(store& values, std::string_view line) {
  if (line.starts_with("GET ")) {
    const auto found = values.find(line.substr(4));
    return found == values.end() ? "NOT FOUND\n" : fmt::format("VALUE {}\n", found->second);
  }
  const auto key_end = line.find(' ', 4);  // SET's key ends at the space before its value
  if (!line.starts_with("SET ") || key_end == line.npos) return "ERR expected SET key value or GET key\n";
  const std::string_view key = line.substr(4, key_end - 4);
  if (values.size() == max_keys && !values.contains(key)) return "ERR store full\n";
  values.insert_or_assign(std::string(key), std::string(line.substr(key_end + 1)));
  return "OK\n";
}

task<void> serve_client(connection& client, store& values) {
  for (;;) {
    auto line = co_await client.read_line(256);  // valid until the next read
    if (!line && line.error() == read_errc::too_long) (void)co_await client.write_all("ERR line too long\n");
    if (!line) co_return;  // end_of_stream, truncated, timed_out, a reset: close
    auto sent = co_await client.write_all(answer(values, *line));
    if (!sent) co_return;  // the client is gone, or leaves its replies unread
  }
}

int main(int argc, char** argv) {
  CLI::App app{"kv-service: a key-value store its clients share, a command a line", "kv-service"};
  server_state server;
  server.service = "kv";
  add_server_options(app, server.options, 7071);
  if (auto status = parse_command_line(app, argc, argv)) return *status;
  store values;
  auto session = [&values](connection& client) { return serve_client(client, values); };
  return run_on_backend(server.options, [&] { return serve_stream(server, session); });
}
