// libFuzzer harness for the files service's UDP packet decoder.
#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "files/protocol.hpp"

using namespace switchboard::services::files::protocol;

namespace {
void require(bool ok) {
  if (!ok) __builtin_trap();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data), size);
  const auto packet = udp::decode(input);
  if (!packet) return 0;
  if (const auto* c = std::get_if<udp::chunk>(&*packet)) require(c->payload.size() <= udp::chunk_size);
  if (const auto* o = std::get_if<udp::open_transfer>(&*packet)) {
    require(size >= udp::open_min_size && o->name.size() <= max_name_size);
  }
  // Re-encoding gives the same packet back: byte for byte, except an open's padding.
  std::vector<std::byte> encoded;
  udp::encode(*packet, encoded);
  if (const auto* o = std::get_if<udp::open_transfer>(&*packet)) {
    const std::size_t meaningful = 1 + 8 + 8 + sizeof(udp::cookie) + 2 + o->name.size();
    require(encoded.size() <= size &&
            std::equal(encoded.begin(), encoded.begin() + meaningful, input.begin()));
  } else {
    require(encoded.size() == size && std::equal(encoded.begin(), encoded.end(), input.begin()));
  }
  const auto again = udp::decode(encoded);
  require(again.has_value() && again->index() == packet->index());
  std::vector<std::byte> twice;
  udp::encode(*again, twice);
  require(twice == encoded);
  return 0;
}
