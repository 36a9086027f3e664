#include "trace_view/json.hpp"

#include <charconv>
#include <cmath>
#include <system_error>

#include <fmt/core.h>

namespace switchboard::tools::trace_view {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

void append_utf8(std::string& out, unsigned cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

// What the user sees of a character the reader did not expect.
std::string shown(char c) {
  const auto byte = static_cast<unsigned char>(c);
  if (byte >= 0x20 && byte < 0x7f) return fmt::format("'{}'", c);
  return fmt::format("byte 0x{:02x}", byte);
}

}  // namespace

const json_value* json_value::find(std::string_view key) const {
  if (type != kind::object) return nullptr;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (keys[i] == key) return &items[i];
  }
  return nullptr;
}

void json_reader::fail(const std::string& what) const { fail_at(what, pos_); }

void json_reader::fail_at(const std::string& what, std::size_t offset) const {
  throw json_error(what, offset, offset >= text_.size());
}

void json_reader::skip_whitespace() {
  while (pos_ < text_.size()) {
    const char c = text_[pos_];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return;
    ++pos_;
  }
}

char json_reader::peek() {
  skip_whitespace();
  if (pos_ >= text_.size()) fail("the text ends where a value was expected");
  return text_[pos_];
}

bool json_reader::accept(char c) {
  skip_whitespace();
  if (pos_ < text_.size() && text_[pos_] == c) {
    ++pos_;
    return true;
  }
  return false;
}

void json_reader::expect(char c, std::string_view what) {
  skip_whitespace();
  if (pos_ >= text_.size()) fail(fmt::format("the text ends where {} was expected", what));
  if (text_[pos_] != c) fail(fmt::format("expected {}, found {}", what, shown(text_[pos_])));
  ++pos_;
}

bool json_reader::at_end() {
  skip_whitespace();
  return pos_ >= text_.size();
}

json_value json_reader::value() {
  const char c = peek();
  json_value v;
  switch (c) {
    case '{': {
      if (++depth_ > max_depth_) fail(fmt::format("nested deeper than {} levels", max_depth_));
      ++pos_;
      v.type = json_value::kind::object;
      if (!accept('}')) {
        do {
          if (peek() != '"') fail(fmt::format("expected a member name, found {}", shown(text_[pos_])));
          v.keys.push_back(string());
          expect(':', "':' after a member name");
          v.items.push_back(value());
        } while (accept(','));
        expect('}', "',' or '}' in an object");
      }
      --depth_;
      return v;
    }
    case '[': {
      if (++depth_ > max_depth_) fail(fmt::format("nested deeper than {} levels", max_depth_));
      ++pos_;
      v.type = json_value::kind::array;
      if (!accept(']')) {
        do {
          v.items.push_back(value());
        } while (accept(','));
        expect(']', "',' or ']' in an array");
      }
      --depth_;
      return v;
    }
    case '"':
      v.type = json_value::kind::string;
      v.text = string();
      return v;
    case 't':
      literal("true");
      v.type = json_value::kind::boolean;
      v.boolean = true;
      return v;
    case 'f':
      literal("false");
      v.type = json_value::kind::boolean;
      return v;
    case 'n':
      literal("null");
      return v;
    default:
      if (c == '-' || is_digit(c)) return number();
      fail(fmt::format("expected a value, found {}", shown(c)));
  }
}

void json_reader::literal(std::string_view word) {
  for (const char c : word) {
    if (pos_ >= text_.size()) fail("the text ends inside a literal");
    if (text_[pos_] != c) fail(fmt::format("expected '{}', found {}", word, shown(text_[pos_])));
    ++pos_;
  }
}

json_value json_reader::number() {
  // The grammar is checked here; from_chars then converts exactly what it allows.
  const std::size_t start = pos_;
  const auto more = [&] { return pos_ < text_.size(); };
  const auto digits = [&](const char* where) {
    if (!more()) fail(fmt::format("the text ends inside a number ({})", where));
    if (!is_digit(text_[pos_])) fail(fmt::format("expected a digit in a number ({}), found {}", where, shown(text_[pos_])));
    while (more() && is_digit(text_[pos_])) ++pos_;
  };
  if (text_[pos_] == '-') ++pos_;
  if (more() && text_[pos_] == '0') {
    ++pos_;
  } else {
    digits("integer part");
  }
  if (more() && text_[pos_] == '.') {
    ++pos_;
    digits("fraction");
  }
  if (more() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
    ++pos_;
    if (more() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
    digits("exponent");
  }
  json_value v;
  v.type = json_value::kind::number;
  const char* first = text_.data() + start;
  const char* last = text_.data() + pos_;
  const auto [end, error] = std::from_chars(first, last, v.number);
  if (error == std::errc::result_out_of_range || (error == std::errc{} && !std::isfinite(v.number))) {
    // No trace needs 1e400 or 1e-400; refusing both keeps every number finite and exact enough.
    fail_at(fmt::format("number out of range: {}", std::string_view(first, std::min<std::size_t>(40, pos_ - start))),
            start);
  }
  if (error != std::errc{} || end != last) fail_at("malformed number", start);
  return v;
}

unsigned json_reader::hex4() {
  unsigned value = 0;
  for (int i = 0; i < 4; ++i) {
    if (pos_ >= text_.size()) fail("the text ends inside a \\u escape");
    const char c = text_[pos_];
    unsigned digit;
    if (is_digit(c)) {
      digit = static_cast<unsigned>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      digit = static_cast<unsigned>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      digit = static_cast<unsigned>(c - 'A' + 10);
    } else {
      fail(fmt::format("expected 4 hex digits after \\u, found {}", shown(c)));
    }
    value = value * 16 + digit;
    ++pos_;
  }
  return value;
}

// One multi-byte UTF-8 character, checked (no overlong forms, no surrogates,
// nothing past U+10FFFF), copied to `out`.
void json_reader::utf8_sequence(std::string& out) {
  const std::size_t start = pos_;
  const auto lead = static_cast<unsigned char>(text_[pos_]);
  std::size_t length;
  unsigned cp;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
    cp = lead & 0x1fu;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    cp = lead & 0x0fu;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    cp = lead & 0x07u;
  } else {
    fail("invalid UTF-8 in a string");
  }
  for (std::size_t i = 1; i < length; ++i) {
    if (start + i >= text_.size()) fail_at("the text ends inside a UTF-8 character", text_.size());
    const auto byte = static_cast<unsigned char>(text_[start + i]);
    if ((byte & 0xc0) != 0x80) fail_at("invalid UTF-8 in a string", start);
    cp = (cp << 6) | (byte & 0x3fu);
  }
  if ((length == 3 && cp < 0x800) || (length == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
      (cp >= 0xd800 && cp <= 0xdfff)) {
    fail_at("invalid UTF-8 in a string", start);
  }
  out.append(text_.substr(start, length));
  pos_ = start + length;
}

std::string json_reader::string() {
  skip_whitespace();
  if (pos_ >= text_.size()) fail("the text ends where a string was expected");
  if (text_[pos_] != '"') fail(fmt::format("expected a string, found {}", shown(text_[pos_])));
  ++pos_;
  std::string out;
  for (;;) {
    if (pos_ >= text_.size()) fail("the text ends inside a string");
    const char c = text_[pos_];
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"') {
      ++pos_;
      return out;
    }
    if (byte < 0x20) fail("a control character inside a string (it must be escaped)");
    if (byte >= 0x80) {
      utf8_sequence(out);
      continue;
    }
    ++pos_;
    if (c != '\\') {
      out += c;
      continue;
    }
    if (pos_ >= text_.size()) fail("the text ends inside an escape");
    const char e = text_[pos_++];
    switch (e) {
      case '"': out += '"'; break;
      case '\\': out += '\\'; break;
      case '/': out += '/'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': {
        const std::size_t escape = pos_ - 2;
        unsigned cp = hex4();
        if (cp >= 0xdc00 && cp <= 0xdfff) fail_at("a lone low surrogate in a \\u escape", escape);
        if (cp >= 0xd800 && cp <= 0xdbff) {
          // A high surrogate must be followed by its low half: "\ud83d\ude00".
          if (pos_ < text_.size() && text_[pos_] != '\\') fail_at("a lone high surrogate in a \\u escape", escape);
          if (text_.size() - pos_ < 2) fail_at("the text ends inside a surrogate pair", text_.size());
          if (text_[pos_ + 1] != 'u') fail_at("a lone high surrogate in a \\u escape", escape);
          pos_ += 2;
          const unsigned low = hex4();
          if (low < 0xdc00 || low > 0xdfff) fail_at("a high surrogate not followed by a low one", escape);
          cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
        }
        append_utf8(out, cp);
        break;
      }
      default:
        fail_at(fmt::format("unknown escape \\{}", shown(e)), pos_ - 2);
    }
  }
}

json_value parse_json(std::string_view text, std::size_t max_depth) {
  json_reader reader(text, max_depth);
  json_value v = reader.value();
  if (!reader.at_end()) throw json_error("more text after the JSON value", reader.offset(), false);
  return v;
}

std::size_t line_of(std::string_view text, std::size_t offset) {
  std::size_t line = 1;
  const std::size_t end = std::min(offset, text.size());
  for (std::size_t i = 0; i < end; ++i) {
    if (text[i] == '\n') ++line;
  }
  return line;
}

}  // namespace switchboard::tools::trace_view
