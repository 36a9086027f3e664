// libFuzzer harness for the files service's TCP request parsers: the seed's
// command + offset and the named extension. Each input goes to both.
#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <span>
#include <string_view>

#include "files/protocol.hpp"

using namespace switchboard::services::files::protocol;

namespace {

void require(bool ok) {
  if (!ok) __builtin_trap();
}

// A reader that reads exactly what `needed` asks for reaches the answer the
// whole input gives, and never reads past the request.
void check_seed(std::span<const std::byte> input) {
  constexpr std::size_t request_max = command_size + offset_field_size;
  const seed_request whole = parse_seed_request(input);
  std::size_t have = 0;
  seed_request step = parse_seed_request(input.first(0));
  while (step.what == seed_request::kind::need_more) {
    require(step.needed > 0 && have + step.needed <= request_max);
    if (have + step.needed > input.size()) return;  // the input ends first
    have += step.needed;
    step = parse_seed_request(input.first(have));
  }
  require(step.what == whole.what && step.offset == whole.offset);
  if (whole.what == seed_request::kind::invalid) require(!whole.why.empty());
  if (whole.what == seed_request::kind::from_offset) {
    require(whole.offset >= 0 && whole.offset <= max_seed_offset);
    const auto again = encode_seed_request(seed_command::from_offset, whole.offset);
    require(again.has_value() && parse_seed_request(*again).offset == whole.offset);
  }
}

void check_named(std::span<const std::byte> input) {
  const named_request whole = parse_named_request(input);
  std::size_t have = 0;
  named_request step = parse_named_request(input.first(0));
  while (step.what == named_request::kind::need_more) {
    require(step.needed > 0 && have + step.needed <= named_request_max_size);
    if (have + step.needed > input.size()) return;
    have += step.needed;
    step = parse_named_request(input.first(have));
  }
  require(step.what == whole.what);
  if (whole.what == named_request::kind::invalid) {
    require(!whole.why.empty() && whole.skip <= 0xffff + 8);
    return;
  }
  require(!whole.name.empty() && whole.name.size() <= max_name_size);
  require(whole.name.find('\0') == std::string_view::npos);
  const auto again = encode_named_request(whole.name, whole.offset);
  require(again.size() == have && std::equal(again.begin(), again.end(), input.begin()));
  // The fallback's allow-list admits one harmless component only.
  if (is_plain_name(whole.name)) {
    require(whole.name.find('/') == std::string_view::npos && whole.name != "." &&
            whole.name != "..");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data), size);
  check_seed(input);
  check_named(input);
  return 0;
}
