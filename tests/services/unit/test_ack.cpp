// The ack service's framing and printing, without sockets.
#include <catch2/catch.hpp>

#include <string>

#include "ack/protocol.hpp"

using namespace switchboard::services::ack;

TEST_CASE("a message ends at its first LF, at 4 KiB, or at EOF", "[ack]") {
  CHECK(message_end("hello\n", false) == 6u);
  CHECK(message_end("hello\r\nmore\n", false) == 7u);
  CHECK(message_end("\n", false) == 1u);
  // No end yet: the session waits for more, or for the lull.
  CHECK(message_end("", false) == std::nullopt);
  CHECK(message_end("no newline", false) == std::nullopt);
  CHECK(message_end(std::string(4095, 'x'), false) == std::nullopt);
  CHECK(message_end(std::string(4096, 'x'), false) == 4096u);
  CHECK(message_end(std::string(5000, 'x'), false) == 4096u);
  // A LF past 4 KiB does not count; one at the 4096th byte does.
  CHECK(message_end(std::string(4096, 'x') + "\n", false) == 4096u);
  CHECK(message_end(std::string(4095, 'x') + "\n", false) == 4096u);
  CHECK(message_end("no newline", true) == 10u);
  CHECK(message_end("", true) == 0u);
  CHECK(message_end("line\nafter", true) == 5u);
}

TEST_CASE("a message prints without its LF or CRLF, other bytes as \\xNN", "[ack]") {
  CHECK(printable("hello\n") == "hello");
  CHECK(printable("hello\r\n") == "hello");
  CHECK(printable("hello") == "hello");
  CHECK(printable("hello\r") == "hello\\x0d");
  CHECK(printable("two\n\n") == "two\\x0a");
  CHECK(printable("") == "");
  CHECK(printable(std::string("a\tb\0c\x7f\x80\xff~ \\", 11)) == "a\\x09b\\x00c\\x7f\\x80\\xff~ \\");
  CHECK(announcement("127.0.0.1:40000", "hi\r\n") == "message from 127.0.0.1:40000: hi");
  CHECK(announcement("[::1]:40000", "\x1b[2J") == "message from [::1]:40000: \\x1b[2J");
  CHECK(announcement("unix", "") == "message from unix: ");
}
