#include "switchboard/source_key.hpp"

#include <arpa/inet.h>

#include <array>
#include <cstring>

#include <fmt/format.h>

namespace switchboard {
namespace {

// ::ffff:0:0/96 carries an IPv4 address in its last 32 bits (RFC 4291 §2.5.5.2).
bool is_v4_mapped(const in6_addr& address) {
  static constexpr std::array<std::uint8_t, 12> prefix{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(address.s6_addr, prefix.data(), prefix.size()) == 0;
}

std::uint64_t big_endian(const std::uint8_t* bytes, std::size_t count) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < count; ++i) value = value << 8 | bytes[i];
  return value;
}

}  // namespace

source_key source_key::of(const endpoint& peer) noexcept {
  source_key key;
  if (peer.family() == AF_INET) {
    const auto& v4 = *reinterpret_cast<const sockaddr_in*>(peer.native());
    key.kind_ = kind::ipv4;
    key.bits_ = ntohl(v4.sin_addr.s_addr);
  } else if (peer.family() == AF_INET6) {
    const in6_addr& address = reinterpret_cast<const sockaddr_in6*>(peer.native())->sin6_addr;
    if (is_v4_mapped(address)) {
      key.kind_ = kind::ipv4;
      key.bits_ = big_endian(address.s6_addr + 12, 4);
    } else {
      key.kind_ = kind::ipv6_prefix;
      key.bits_ = big_endian(address.s6_addr, 8);
    }
  }
  return key;
}

std::string source_key::to_string() const {
  char text[INET6_ADDRSTRLEN] = {};
  switch (kind_) {
    case kind::ipv4: {
      in_addr address{htonl(static_cast<std::uint32_t>(bits_))};
      ::inet_ntop(AF_INET, &address, text, sizeof text);
      return text;
    }
    case kind::ipv6_prefix: {
      in6_addr address{};
      for (int i = 0; i < 8; ++i) address.s6_addr[i] = static_cast<std::uint8_t>(bits_ >> (56 - 8 * i));
      ::inet_ntop(AF_INET6, &address, text, sizeof text);
      return fmt::format("{}/64", text);
    }
    case kind::local:
      break;
  }
  return "local";
}

std::size_t source_key_hash::operator()(const source_key& key) const noexcept {
  // A multiplicative mix: the low bits of an address (its last octet, its
  // subnet number) would otherwise decide the bucket alone.
  const std::uint64_t mixed = (key.bits_ ^ static_cast<std::uint64_t>(key.kind_) << 62) * 0x9e3779b97f4a7c15u;
  return static_cast<std::size_t>(mixed ^ mixed >> 32);
}

bool source_counts::try_add(const source_key& key) {
  std::size_t& held = held_[key];  // a source at its cap holds one at least: nothing new is stored
  if (cap_ != 0 && held >= cap_ && !key.is_local()) return false;
  ++held;
  return true;
}

void source_counts::remove(const source_key& key) {
  const auto found = held_.find(key);
  if (found == held_.end()) return;
  if (--found->second == 0) held_.erase(found);
}

std::size_t source_counts::held_by(const source_key& key) const {
  const auto found = held_.find(key);
  return found == held_.end() ? 0 : found->second;
}

}  // namespace switchboard
