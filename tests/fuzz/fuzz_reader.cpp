// libFuzzer harness for the buffered reader (switchboard/reader.hpp): a
// stream cut into pieces of fuzzed sizes is read frame by frame, and every
// answer is checked against a plain search of the whole stream.
//
// Input: byte 0 picks the delimiter, byte 1 the maximum frame length,
// byte 2 seeds the piece sizes; the rest is the stream.
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <optional>
#include <span>
#include <string_view>

#include "switchboard/reader.hpp"

using namespace switchboard;

namespace {

void require(bool ok) {
  if (!ok) __builtin_trap();
}

// A source whose reads complete at once with the next piece of `data`.
struct piece_source {
  std::string_view data;
  std::uint32_t seed;

  struct ready {
    std::size_t count;
    bool await_ready() const noexcept { return true; }
    void await_suspend(std::coroutine_handle<>) const noexcept {}
    result<std::size_t> await_resume() const noexcept { return count; }
  };
  ready read_some(std::span<std::byte> space) {
    seed = seed * 1103515245 + 12345;
    const std::size_t piece = 1 + (seed >> 16) % 37;
    const std::size_t count = std::min({piece, space.size(), data.size()});
    std::memcpy(space.data(), data.data(), count);
    data.remove_prefix(count);
    return {count};
  }
};

// Runs a task that never suspends (its source never waits) to its result.
struct inline_run {
  struct promise_type {
    inline_run get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() const noexcept { return {}; }
    std::suspend_never final_suspend() const noexcept { return {}; }
    void return_void() const noexcept {}
    void unhandled_exception() const noexcept { std::terminate(); }
  };
};
inline_run store(task<result<std::string_view>> t, std::optional<result<std::string_view>>& out) {
  out.emplace(co_await std::move(t));
}

// What a frame of `rest` (the stream not yet consumed) must be.
struct expected {
  std::optional<read_errc> error{};
  std::string_view frame{};
  std::size_t consumed = 0;
};
expected reference(std::string_view rest, std::string_view delimiter, std::size_t max, bool crlf) {
  const std::size_t at = rest.find(delimiter);
  if (at != std::string_view::npos) {
    const std::size_t length = crlf && at > 0 && rest[at - 1] == '\r' ? at - 1 : at;
    if (length > max) return {read_errc::too_long};
    return {std::nullopt, rest.substr(0, length), at + delimiter.size()};
  }
  // No delimiter ever comes: a frame too long whatever the last bytes were, else cut by the end.
  std::size_t tail = 0;
  for (std::size_t j = std::min(rest.size(), delimiter.size() - 1); j > 0 && tail == 0; --j) {
    if (rest.substr(rest.size() - j) == delimiter.substr(0, j)) tail = j;
  }
  if (tail == 0 && crlf && !rest.empty() && rest.back() == '\r') tail = 1;
  if (rest.size() - tail > max) return {read_errc::too_long};
  return {rest.empty() ? read_errc::end_of_stream : read_errc::truncated};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  constexpr std::string_view delimiters[] = {"\n", "\r\n\r\n", ";", "abab"};
  const std::size_t choice = data[0] % (std::size(delimiters) + 1);
  const bool crlf = choice == std::size(delimiters);  // read_line
  const std::string_view delimiter = crlf ? "\n" : delimiters[choice];
  const std::size_t max = data[1] % 64;
  const std::string_view stream(reinterpret_cast<const char*>(data + 3), size - 3);

  piece_source source{stream, data[2]};
  reader in(source);
  std::size_t consumed = 0;
  for (;;) {
    std::optional<result<std::string_view>> got;
    store(crlf ? in.read_line(max) : in.read_until(delimiter, max), got);
    require(got.has_value());
    const expected want = reference(stream.substr(consumed), delimiter, max, crlf);
    if (want.error) {
      require(!*got && got->error() == *want.error);
      // What was read and not returned is the stream's next bytes.
      require(stream.substr(consumed).substr(0, in.pending().size()) == in.pending());
      require(in.pending().size() <= max + delimiter.size() + 1);
      return 0;
    }
    require(*got && **got == want.frame);
    consumed += want.consumed;
  }
}
