#include "cookie.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <stdexcept>
#include <vector>

namespace switchboard::services::files {
namespace {

constexpr std::size_t second_size = 4;

void put_u32(std::vector<unsigned char>& out, std::uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<unsigned char>(value >> shift));
}

void put_bytes(std::vector<unsigned char>& out, const void* bytes, std::size_t size) {
  const auto* p = static_cast<const unsigned char*>(bytes);
  out.insert(out.end(), p, p + size);
}

// What a cookie vouches for: the family, the port and the address. Only these
// fields, never the whole sockaddr: its padding and an IPv6 flow label are
// not the client's identity.
void put_client(std::vector<unsigned char>& out, const endpoint& client) {
  put_u32(out, static_cast<std::uint32_t>(client.family()) << 16 | client.port());
  if (client.family() == AF_INET) {
    const auto& v4 = *reinterpret_cast<const sockaddr_in*>(client.native());
    put_bytes(out, &v4.sin_addr, sizeof v4.sin_addr);
  } else if (client.family() == AF_INET6) {
    const auto& v6 = *reinterpret_cast<const sockaddr_in6*>(client.native());
    put_bytes(out, &v6.sin6_addr, sizeof v6.sin6_addr);
    put_u32(out, v6.sin6_scope_id);
  }
}

}  // namespace

cookie_jar::cookie_jar() : epoch_(clock::now()) {
  if (RAND_bytes(reinterpret_cast<unsigned char*>(secret_.data()), static_cast<int>(secret_.size())) != 1) {
    throw std::runtime_error("files: no random bytes for the UDP cookie secret");
  }
}

std::uint32_t cookie_jar::second_of(clock::time_point t) const {
  return static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::seconds>(t - epoch_).count());
}

protocol::udp::cookie cookie_jar::make(std::uint32_t second, const endpoint& client) const {
  std::vector<unsigned char> message;
  put_u32(message, second);
  put_client(message, client);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_size = 0;
  HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()), message.data(), message.size(),
       mac, &mac_size);
  protocol::udp::cookie proof{};
  std::copy_n(reinterpret_cast<const std::byte*>(message.data()), second_size, proof.begin());
  std::copy_n(reinterpret_cast<const std::byte*>(mac), proof.size() - second_size,
              proof.begin() + second_size);
  return proof;
}

protocol::udp::cookie cookie_jar::issue(const endpoint& client, clock::time_point now) const {
  return make(second_of(now), client);
}

bool cookie_jar::valid(const protocol::udp::cookie& proof, const endpoint& client,
                       clock::time_point now) const {
  std::uint32_t issued = 0;
  for (std::size_t i = 0; i < second_size; ++i) issued = issued << 8 | std::to_integer<std::uint32_t>(proof[i]);
  const std::uint32_t current = second_of(now);
  if (issued > current || current - issued > lifetime.count()) return false;
  const protocol::udp::cookie expected = make(issued, client);
  // Constant time: how far a guess matched must not show in the reply's timing.
  return CRYPTO_memcmp(expected.data(), proof.data(), proof.size()) == 0;
}

}  // namespace switchboard::services::files
