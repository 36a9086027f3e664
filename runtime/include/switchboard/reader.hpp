// Buffered reading for protocols framed by a delimiter: lines (guess, ack,
// SMTP, RESP's headers), "\r\n\r\n" (HTTP/1.1 headers), any byte string,
// and counted parts between them (RESP bulk strings, HTTP bodies).
//
//   reader in(stream);                           // or anything with read_some(std::span<std::byte>)
//   auto line = co_await in.read_line(512);      // result<std::string_view>: the line, without "\n" or "\r\n"
//   if (!line && line.error() == read_errc::too_long) ...   // in.pending() holds what came
//
// A reader reads as much as is there and keeps what follows a frame for the
// next call, so one read may serve several lines and one line may take many
// reads. What a call returns stays valid until the next call on the reader.
// Memory is bounded by the largest frame asked for (`max` plus its
// delimiter), never by what the peer sends.
//
// Errors: the source's own (timed_out, operation_canceled, connection_reset,
// ...), or read_errc. After any error the bytes read so far stay in
// pending(), for the caller to use (ack answers a message cut by its lull
// or by EOF) or drop with consume().
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

#include "switchboard/result.hpp"
#include "switchboard/task.hpp"

namespace switchboard {

// Why a framed read ended without a frame (besides the source's own errors).
enum class read_errc {
  end_of_stream = 1,  // the stream ended where a new frame would start
  truncated,          // it ended in the middle of a frame: its bytes are in pending()
  too_long,           // no delimiter within the maximum: the bytes are in pending()
};

const std::error_category& read_category() noexcept;
std::error_code make_error_code(read_errc e) noexcept;

}  // namespace switchboard

template <>
struct std::is_error_code_enum<switchboard::read_errc> : std::true_type {};

namespace switchboard {

namespace detail {

// Where the first frame of `pending` ends; `from` bytes at its start were
// searched before and hold no delimiter. The framing logic of reader, apart
// from any I/O (and fuzzed on its own: tests/fuzz/fuzz_reader.cpp).
struct frame_scan {
  enum class status { complete, incomplete, too_long };
  status found = status::incomplete;
  std::size_t length = 0;    // complete: the frame's bytes (a line's "\r" stripped)
  std::size_t consumed = 0;  // complete: with its delimiter; incomplete: bytes searched for good
};
// A frame has at most `max` bytes before `delimiter`; with `crlf`, a "\r"
// right before the delimiter belongs to it and is not counted.
frame_scan scan_frame(std::string_view pending, std::size_t from, std::string_view delimiter,
                      std::size_t max, bool crlf) noexcept;

}  // namespace detail

template <class Source>
class reader {
 public:
  // Reads from `source`, which must outlive the reader.
  explicit reader(Source& source) noexcept : source_(&source) {}

  // The bytes before the next `delimiter` (at most `max` of them); the
  // delimiter (not empty: invalid_argument) is consumed, not returned.
  task<result<std::string_view>> read_until(std::string_view delimiter, std::size_t max) {
    return read_frame(delimiter, max, false);
  }
  // The next line, ended by "\n" or "\r\n", without its ending; at most `max` bytes.
  task<result<std::string_view>> read_line(std::size_t max) { return read_frame("\n", max, true); }

  // The next `count` bytes exactly: truncated when the stream ends first.
  task<result<std::string_view>> read_exact(std::size_t count) {
    while (pending().size() < count) {
      auto got = co_await fill(count);
      if (!got) co_return got.error();
      if (*got == 0) co_return end_error();
    }
    const std::string_view frame = pending().substr(0, count);
    consume(count);
    co_return frame;
  }

  // Reads what the source has now (at least one byte; 0 at EOF) after the
  // pending bytes, the buffer growing by at most 4 KiB for it: for framing
  // a caller does itself (a message ended by a lull: with_timeout on this).
  task<result<std::size_t>> read_more() { return fill(pending().size() + 4096); }

  // Bytes read from the source and not returned yet.
  std::string_view pending() const noexcept {
    return std::string_view(buffer_).substr(start_, end_ - start_);
  }
  // Drops the first `count` pending bytes.
  void consume(std::size_t count) noexcept {
    start_ += std::min(count, end_ - start_);
    searched_ = 0;
  }

 private:
  task<result<std::string_view>> read_frame(std::string_view delimiter, std::size_t max, bool crlf) {
    using status = detail::frame_scan::status;
    if (delimiter.empty()) co_return std::make_error_code(std::errc::invalid_argument);
    // The most a frame, its "\r" and its delimiter take; the buffer never grows past it.
    const std::size_t most = max + std::min(delimiter.size() + 1, SIZE_MAX - max);
    for (;;) {
      const detail::frame_scan scan = detail::scan_frame(pending(), searched_, delimiter, max, crlf);
      if (scan.found == status::complete) {
        const std::string_view frame = pending().substr(0, scan.length);
        consume(scan.consumed);
        co_return frame;
      }
      if (scan.found == status::too_long) co_return read_errc::too_long;
      searched_ = scan.consumed;
      auto got = co_await fill(most);
      if (!got) co_return got.error();
      if (*got == 0) co_return end_error();
    }
  }

  std::error_code end_error() const noexcept {
    return pending().empty() ? read_errc::end_of_stream : read_errc::truncated;
  }

  // Reads once from the source into the buffer, which grows up to `limit`
  // bytes (or what is pending already): the bytes read, 0 at EOF.
  task<result<std::size_t>> fill(std::size_t limit) {
    if (start_ > 0) {  // keep pending bytes at the front, so that the free space is all at the end
      std::memmove(buffer_.data(), buffer_.data() + start_, end_ - start_);
      end_ -= start_;
      start_ = 0;
    }
    if (end_ == buffer_.size()) {
      buffer_.resize(std::max(end_ + 1, std::min(limit, std::max<std::size_t>(2 * buffer_.size(), 4096))));
    }
    const auto space = std::as_writable_bytes(std::span(buffer_).subspan(end_));
    auto got = co_await source_->read_some(space);
    if (!got) co_return got.error();
    end_ += *got;
    co_return *got;
  }

  Source* source_;
  std::string buffer_;        // pending bytes are [start_, end_)
  std::size_t start_ = 0;
  std::size_t end_ = 0;
  std::size_t searched_ = 0;  // pending bytes known to hold no delimiter
};

}  // namespace switchboard
