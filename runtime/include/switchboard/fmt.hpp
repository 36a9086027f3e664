// fmt support for switchboard's types: fmt::format("{}", endpoint) prints
// 127.0.0.1:7007, [::1]:7007 or unix:/tmp/x.sock. The only installed header
// that includes fmt: a program that does not format endpoints with fmt
// does not compile fmt's headers (endpoint::to_string() needs none).
#pragma once

#include <string_view>

#include <fmt/format.h>

#include "switchboard/net.hpp"

template <>
struct fmt::formatter<switchboard::endpoint> : fmt::formatter<std::string_view> {
  template <class Context>
  auto format(const switchboard::endpoint& ep, Context& ctx) const {
    return fmt::formatter<std::string_view>::format(ep.to_string(), ctx);
  }
};
