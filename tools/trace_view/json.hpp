// A small, bounded JSON reader for trace files (RFC 8259): strict grammar,
// UTF-8 checked, \uXXXX escapes with surrogate pairs, a nesting limit. It
// reads one value at a time, so that a trace's events can be taken one by one
// and a file cut short can be told apart from one that is malformed.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace switchboard::tools::trace_view {

// One JSON value; objects keep their members in file order (keys may repeat:
// find() returns the first).
struct json_value {
  enum class kind { null, boolean, number, string, array, object };
  kind type = kind::null;
  bool boolean = false;
  double number = 0;
  std::string text;                // a string's value
  std::vector<json_value> items;   // an array's items, or an object's values
  std::vector<std::string> keys;   // an object's keys, one per item

  // The member named `key` of an object, or nullptr (also when not an object).
  const json_value* find(std::string_view key) const;
  bool is_number() const { return type == kind::number; }
  bool is_string() const { return type == kind::string; }
  bool is_object() const { return type == kind::object; }
};

// Malformed or cut-short JSON. `at_end` tells that the text ended where more
// was needed (a truncated file), `offset` where the problem is.
class json_error : public std::runtime_error {
 public:
  json_error(const std::string& what, std::size_t offset, bool at_end)
      : std::runtime_error(what), offset_(offset), at_end_(at_end) {}
  std::size_t offset() const { return offset_; }
  bool at_end() const { return at_end_; }

 private:
  std::size_t offset_;
  bool at_end_;
};

// Reads values from `text` from its start; throws json_error.
class json_reader {
 public:
  static constexpr std::size_t default_max_depth = 64;

  explicit json_reader(std::string_view text, std::size_t max_depth = default_max_depth)
      : text_(text), max_depth_(max_depth) {}

  // The next value (leading whitespace skipped).
  json_value value();
  // Skips whitespace, then consumes `c` or throws, naming `what` was expected.
  void expect(char c, std::string_view what);
  // Skips whitespace and returns the next character without consuming it;
  // throws (at_end) when the text has ended.
  char peek();
  // Skips whitespace and consumes `c` if it comes next.
  bool accept(char c);
  // A string value (the next token must be one).
  std::string string();
  // Skips whitespace; true when nothing else follows.
  bool at_end();
  std::size_t offset() const { return pos_; }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
  std::size_t max_depth_;
  std::size_t depth_ = 0;

  void skip_whitespace();
  [[noreturn]] void fail(const std::string& what) const;
  [[noreturn]] void fail_at(const std::string& what, std::size_t offset) const;
  json_value number();
  void literal(std::string_view word);
  unsigned hex4();
  void utf8_sequence(std::string& out);
};

// The whole of `text` as one value; throws json_error.
json_value parse_json(std::string_view text, std::size_t max_depth = json_reader::default_max_depth);

// The 1-based line of byte `offset` in `text`.
std::size_t line_of(std::string_view text, std::size_t offset);

}  // namespace switchboard::tools::trace_view
