#include "switchboard/reader.hpp"

namespace switchboard {
namespace {

class read_error_category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "switchboard.read"; }
  std::string message(int value) const override {
    switch (static_cast<read_errc>(value)) {
      case read_errc::end_of_stream: return "end of stream";
      case read_errc::truncated: return "the stream ended in the middle of a frame";
      case read_errc::too_long: return "no delimiter within the maximum length";
    }
    return "unknown read error";
  }
};

// How many bytes at the end of `pending` may still be the start of the
// frame's ending: a proper prefix of `delimiter`, or with `crlf` a "\r".
std::size_t possible_ending(std::string_view pending, std::string_view delimiter, bool crlf) noexcept {
  for (std::size_t j = std::min(pending.size(), delimiter.size() - 1); j > 0; --j) {
    if (pending.substr(pending.size() - j) == delimiter.substr(0, j)) return j;
  }
  return crlf && !pending.empty() && pending.back() == '\r' ? 1 : 0;
}

}  // namespace

const std::error_category& read_category() noexcept {
  static const read_error_category category;
  return category;
}

std::error_code make_error_code(read_errc e) noexcept { return {static_cast<int>(e), read_category()}; }

namespace detail {

frame_scan scan_frame(std::string_view pending, std::size_t from, std::string_view delimiter,
                      std::size_t max, bool crlf) noexcept {
  using status = frame_scan::status;
  const std::size_t at = pending.find(delimiter, std::min(from, pending.size()));
  if (at != std::string_view::npos) {
    const std::size_t length = crlf && at > 0 && pending[at - 1] == '\r' ? at - 1 : at;
    if (length > max) return {status::too_long};
    return {status::complete, length, at + delimiter.size()};
  }
  if (pending.size() - possible_ending(pending, delimiter, crlf) > max) return {status::too_long};
  // A delimiter found later starts no earlier than this.
  const std::size_t searched = pending.size() >= delimiter.size() ? pending.size() - delimiter.size() + 1 : 0;
  return {status::incomplete, 0, searched};
}

}  // namespace detail
}  // namespace switchboard
