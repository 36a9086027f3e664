// libFuzzer harness for the ack service's framing and printing
// (services/ack/protocol.cpp): arbitrary bytes arrive in odd-sized reads
// into the session's 4 KiB buffer, and the message found is printed.
//
// Input: byte 0 picks the read size (bits 0-6) and how the client stops
// sending when no message end came (bit 7: it closes; else it pauses, and
// the lull ends the message); the rest is what the client sends.
//
// Invariants: a message is at most 4 KiB and ends at its first LF, or is
// all that arrived; where it ends does not depend on how the bytes were
// split into reads; its printed form holds only printable ASCII, four
// characters for each byte escaped and one for the rest.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "ack/protocol.hpp"

using namespace switchboard::services::ack;

namespace {

void require(bool invariant) {
  if (!invariant) __builtin_trap();
}

// The message the session takes from `bytes` read `piece` at a time.
std::string frame(std::string_view bytes, std::size_t piece, bool closes) {
  std::string buffer;
  for (;;) {
    const bool ended = bytes.empty() && closes;
    if (const auto end = message_end(buffer, ended)) {
      require(*end <= buffer.size() && *end <= max_message_length);
      return buffer.substr(0, *end);
    }
    if (bytes.empty()) return buffer;  // the lull
    const std::size_t n = std::min({piece, max_message_length - buffer.size(), bytes.size()});
    require(n > 0);
    buffer.append(bytes.substr(0, n));
    bytes.remove_prefix(n);
  }
}

bool is_escaped(unsigned char byte) { return byte < 0x20 || byte > 0x7e; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t piece = 1 + (data[0] & 0x7f);
  const bool closes = (data[0] & 0x80) != 0;
  const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);

  const std::string message = frame(bytes, piece, closes);
  require(message == frame(bytes, bytes.size() + 1, closes));
  require(message.size() <= max_message_length);
  require(bytes.starts_with(message));
  const auto lf = message.find('\n');
  require(lf == std::string::npos || lf == message.size() - 1);
  if (lf == std::string::npos && message.size() < max_message_length) {
    require(message.size() == bytes.size());  // only the client's stop ends it early
  }

  std::string_view body = message;
  if (body.ends_with('\n')) {
    body.remove_suffix(1);
    if (body.ends_with('\r')) body.remove_suffix(1);
  }
  const std::string text = printable(message);
  std::size_t expected = 0;
  for (const char c : body) expected += is_escaped(static_cast<unsigned char>(c)) ? 4 : 1;
  require(text.size() == expected);
  require(std::none_of(text.begin(), text.end(),
                       [](char c) { return is_escaped(static_cast<unsigned char>(c)); }));
  require(announcement("unix", message) == "message from unix: " + text);
  return 0;
}
