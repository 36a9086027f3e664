// The ack service's framing and output, as pure functions over bytes (no
// sockets, no runtime), so that they can be fuzzed and unit-tested.
//
// A client sends one message; the server prints it as one line and replies
// exactly "I got your message" (18 bytes, no line end), then closes. The
// seeds' clients end a message differently (seed 003's with a newline,
// seed 004's with nothing: it waits for the reply without closing), so a
// message ends at its first LF, at EOF, at 4 KiB, or after a lull of 200 ms
// following the last byte received. The lull is the session's business; the
// rest is message_end's.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace switchboard::services::ack {

inline constexpr std::size_t max_message_length = 4096;
inline constexpr std::chrono::milliseconds lull{200};
inline constexpr std::string_view reply = "I got your message";

// How many bytes of `received` (what arrived so far, in order) form the
// message: up to and including the first LF, else the first 4 KiB once that
// much is there, else all of it once the client closed (`ended`); nothing
// while the message may still go on.
std::optional<std::size_t> message_end(std::string_view received, bool ended);

// The message as one printable line: a trailing LF or CRLF removed, then
// every byte below 0x20 or above 0x7e written as \xNN (a backslash stays).
std::string printable(std::string_view message);

// "message from <peer>: <text>" with the message made printable, without a line end.
std::string announcement(std::string_view peer, std::string_view message);

}  // namespace switchboard::services::ack
