// A connected pair of loopback TCP streams for tests of the runtime's I/O.
#pragma once

#include <catch2/catch.hpp>

#include <switchboard/net.hpp>
#include <switchboard/task.hpp>

namespace switchboard::testing {

struct connected_pair {
  listener server_side;
  stream client;
  stream server;
};

inline task<connected_pair> make_pair() {
  connected_pair pair;
  pair.server_side = listener::bind(*endpoint::ip("127.0.0.1", 0)).value();
  auto client = co_await connect(pair.server_side.local());
  REQUIRE(client);
  auto server = co_await pair.server_side.accept();
  REQUIRE(server);
  pair.client = std::move(*client);
  pair.server = std::move(*server);
  co_return pair;
}

}  // namespace switchboard::testing
