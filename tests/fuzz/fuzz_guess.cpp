// libFuzzer harness for the guessing game's protocol (services/guess/protocol.cpp)
// over the buffered reader's framing (runtime/src/reader.cpp):
// arbitrary bytes become a game's range and secret, then lines of a stream
// (framed as the TCP session frames them, read in odd-sized pieces) or
// datagrams, and every reply is checked.
//
// Input: byte 0 picks the transport (bit 0: datagrams) and the read sizes;
// bytes 1-8 give max, bytes 9-16 the secret (both reduced into range); the
// rest is what the client sends (for datagrams: a length byte before each).
//
// Invariants: every reply is one line ending in LF and is the greeting,
// "higher", "lower", "correct after K tries" with K the game's count, or
// "error: ..."; an error never counts a try; a repeated guess is not
// counted; higher/lower point at the secret; framing never yields a line
// with an LF or longer than 64 bytes, and does not depend on how the bytes
// were split into reads. (A datagram may hold an LF before its end: that
// line is simply not a number.)
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <switchboard/reader.hpp>

#include "guess/protocol.hpp"

using namespace switchboard::services::guess;

namespace {

void require(bool invariant) {
  if (!invariant) __builtin_trap();
}

std::uint64_t take_u64(const std::uint8_t*& data, std::size_t& size) {
  std::uint64_t value = 0;
  const std::size_t n = size < 8 ? size : 8;
  std::memcpy(&value, data, n);
  data += n;
  size -= n;
  return value;
}

struct referee {
  std::uint64_t secret;
  std::uint64_t max;
  game play;
  std::vector<std::string> replies;

  referee(std::uint64_t secret_, std::uint64_t max_) : secret(secret_), max(max_), play(secret_, max_) {}

  // Plays one line and checks its reply against the rules.
  void line(std::string_view text) {
    const auto guess = parse_guess(text, max);
    const std::uint64_t tries_before = play.tries();
    const bool won_before = play.won();
    const bool repeated = std::holds_alternative<std::uint64_t>(guess) &&
                          play.repeats(std::get<std::uint64_t>(guess));
    const std::string reply = reply_to_line(play, text);
    check_form(reply);
    if (const auto* number = std::get_if<std::uint64_t>(&guess)) {
      require(*number >= 1 && *number <= max);
      const bool counted = !won_before && !repeated;
      require(play.tries() == tries_before + (counted ? 1 : 0));
      if (!won_before) {
        if (*number < secret) require(reply == "higher\n");
        if (*number > secret) require(reply == "lower\n");
        if (*number == secret) require(play.won());
      }
    } else {
      require(reply.starts_with("error: "));
      require(play.tries() == tries_before);
    }
    require(!won_before || play.won());
    replies.push_back(reply);
  }

  void check_form(const std::string& reply) const {
    require(!reply.empty() && reply.back() == '\n');
    require(reply.find('\n') == reply.size() - 1);
    if (reply.starts_with("error: ")) return;
    if (reply == "higher\n" || reply == "lower\n") {
      require(!play.won());
      return;
    }
    require(play.won());
    require(reply == "correct after " + std::to_string(play.tries()) + " tries\n");
  }
};

// Frames `bytes` as the TCP session does (the buffered reader's framing,
// switchboard/reader.hpp), reading at most `piece` bytes at a time; plays
// each line until the game is won or a line is too long. Returns the replies.
std::vector<std::string> play_stream(std::string_view bytes, std::size_t piece, std::uint64_t secret,
                                     std::uint64_t max) {
  using switchboard::detail::frame_scan;
  referee ref(secret, max);
  std::string buffer;
  std::size_t searched = 0;
  for (;;) {
    const frame_scan scan = switchboard::detail::scan_frame(buffer, searched, "\n", max_line_length, true);
    if (scan.found == frame_scan::status::incomplete) {
      searched = scan.consumed;
      if (bytes.empty()) break;
      const std::size_t n = std::min(piece, bytes.size());
      buffer.append(bytes.substr(0, n));
      bytes.remove_prefix(n);
      continue;
    }
    if (scan.found == frame_scan::status::too_long) {
      // Too long means: even a line end right now would not save it.
      std::string_view line = std::string_view(buffer).substr(0, buffer.find('\n'));
      if (line.ends_with('\r')) line.remove_suffix(1);
      require(line.size() > max_line_length);
      const std::string reply = error_reply(bad_guess::too_long, max);
      ref.check_form(reply);
      ref.replies.push_back(reply);
      break;
    }
    const std::string_view line = std::string_view(buffer).substr(0, scan.length);
    require(line.size() <= max_line_length);
    require(line.find('\n') == std::string_view::npos);
    require(scan.consumed >= line.size() + 1 && scan.consumed <= buffer.size());
    require(buffer[scan.consumed - 1] == '\n');
    ref.line(line);
    buffer.erase(0, scan.consumed);
    searched = 0;
    if (ref.play.won()) break;
  }
  return ref.replies;
}

void play_datagrams(std::string_view bytes, std::uint64_t secret, std::uint64_t max) {
  referee ref(secret, max);
  while (!bytes.empty()) {
    const std::size_t length = std::min<std::size_t>(static_cast<unsigned char>(bytes[0]), bytes.size() - 1);
    const std::string_view datagram = bytes.substr(1, length);
    bytes.remove_prefix(1 + length);
    const guess_datagram request = read_datagram(datagram);
    switch (request.what) {
      case guess_datagram::kind::greeting:
        require(datagram.empty());
        require(parse_greeting(std::string_view(greeting(max)).substr(0, greeting(max).size() - 1)) == max);
        break;
      case guess_datagram::kind::too_long:
        require(datagram.size() > max_line_length);
        ref.check_form(error_reply(bad_guess::too_long, max));
        break;
      case guess_datagram::kind::line:
        require(request.line.size() <= max_line_length);
        ref.line(request.line);
        break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t mode = data[0];
  ++data;
  --size;
  std::uint64_t max = take_u64(data, size);
  // Mostly small games, where guesses hit the range; sometimes the full 64 bits.
  if ((mode & 0x80) == 0) max %= 1000;
  if (max == 0) max = 1;
  const std::uint64_t secret = 1 + take_u64(data, size) % max;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  if (mode & 1) {
    play_datagrams(bytes, secret, max);
    return 0;
  }
  // The replies do not depend on how the bytes were split into reads.
  const std::size_t piece = 1 + ((mode >> 1) & 0x3f);
  require(play_stream(bytes, piece, secret, max) == play_stream(bytes, bytes.size() + 1, secret, max));
  return 0;
}
