#include "protocol.hpp"

#include <algorithm>
#include <string>

#include <fmt/core.h>

namespace switchboard::services::files::protocol {
namespace {

template <class... Fs>
struct overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
overloaded(Fs...) -> overloaded<Fs...>;

std::uint64_t get_be(std::span<const std::byte> bytes) {
  std::uint64_t value = 0;
  for (std::byte b : bytes) value = (value << 8) | std::to_integer<std::uint64_t>(b);
  return value;
}

void put_be(std::vector<std::byte>& out, std::uint64_t value, std::size_t width) {
  for (std::size_t i = width; i-- > 0;) out.push_back(static_cast<std::byte>(value >> (8 * i)));
}

void put_bytes(std::vector<std::byte>& out, std::span<const std::byte> bytes) {
  out.insert(out.end(), bytes.begin(), bytes.end());
}

std::string_view as_text(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

bool has_nul(std::string_view name) { return name.find('\0') != std::string_view::npos; }

seed_request seed_need(std::size_t needed) {
  return {seed_request::kind::need_more, needed, 0, {}};
}
seed_request seed_invalid(std::string_view why) {
  return {seed_request::kind::invalid, 0, 0, why};
}

// The offset as the seed's sprintf("%d") wrote it: an optional '-' and
// digits, ended by a NUL or by the end of the field (ten characters leave no
// room for one); whatever follows the NUL is the buffer's old contents.
seed_request parse_offset_field(std::span<const std::byte> field) {
  std::string_view text = as_text(field);
  text = text.substr(0, text.find('\0'));
  if (text.empty()) return seed_invalid("empty offset");
  const bool negative = text.front() == '-';
  const std::string_view digits = negative ? text.substr(1) : text;
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(),
                                     [](char c) { return c >= '0' && c <= '9'; })) {
    return seed_invalid("offset is not a number");
  }
  if (negative) return seed_invalid("negative offset");
  // "%d" never writes a leading zero: such a field did not come from it.
  if (digits.size() > 1 && digits.front() == '0') return seed_invalid("offset is not a number");
  std::int64_t value = 0;
  for (char c : digits) value = value * 10 + (c - '0');  // ten digits fit easily
  return {seed_request::kind::from_offset, 0, value, {}};
}

named_request named_invalid(std::string_view why, std::size_t skip = 0) {
  named_request r;
  r.what = named_request::kind::invalid;
  r.why = why;
  r.skip = skip;
  return r;
}

constexpr std::size_t named_prefix_size = 1 + 2;  // 'N' and the name length

std::byte type_of(const udp::packet& p) {
  static constexpr char types[] = {'O', 'G', 'C', 'R', 'D', 'E', 'X', 'K', 'F'};
  return static_cast<std::byte>(types[p.index()]);
}

bool known_status(std::uint8_t code) { return code <= static_cast<std::uint8_t>(status::busy); }

template <std::size_t N>
std::array<std::byte, N> get_array(std::span<const std::byte> bytes) {
  std::array<std::byte, N> out;
  std::copy_n(bytes.begin(), N, out.begin());
  return out;
}

}  // namespace

seed_request parse_seed_request(std::span<const std::byte> received) {
  if (received.empty()) return seed_need(command_size);
  const char command = static_cast<char>(received[0]);
  if (command != '0' && command != '1' && command != '2') return seed_invalid("unknown command");
  if (received.size() < command_size) return seed_need(command_size - received.size());
  if (received[1] != std::byte{0}) return seed_invalid("unknown command");
  if (command == static_cast<char>(seed_command::whole_file)) {
    return {seed_request::kind::whole_file, 0, 0, {}};
  }
  constexpr std::size_t full = command_size + offset_field_size;
  if (received.size() < full) return seed_need(full - received.size());
  return parse_offset_field(received.subspan(command_size, offset_field_size));
}

std::optional<std::vector<std::byte>> encode_seed_request(seed_command command,
                                                          std::int64_t offset) {
  std::vector<std::byte> bytes{static_cast<std::byte>(command), std::byte{0}};
  if (command == seed_command::whole_file) return bytes;
  if (offset < 0) return std::nullopt;
  const std::string text = fmt::format("{}", offset);
  if (text.size() > offset_field_size) return std::nullopt;
  bytes.resize(command_size + offset_field_size, std::byte{0});
  std::transform(text.begin(), text.end(), bytes.begin() + command_size,
                 [](char c) { return static_cast<std::byte>(c); });
  return bytes;
}

std::string_view describe(status code) noexcept {
  switch (code) {
    case status::ok: return "ok";
    case status::not_found: return "not found";
    case status::forbidden: return "forbidden";
    case status::bad_request: return "bad request";
    case status::offset_past_end: return "offset past the end of the file";
    case status::unreadable: return "the server could not read the file";
    case status::changed: return "the file changed on the server while it was being sent";
    case status::busy: return "the server is too busy to hash the file now";
  }
  return "unknown status";
}

named_request parse_named_request(std::span<const std::byte> received) {
  named_request r;
  if (received.empty()) {
    r.needed = named_prefix_size;
    return r;
  }
  if (received[0] != named_command) return named_invalid("not a named request");
  if (received.size() < named_prefix_size) {
    r.needed = named_prefix_size - received.size();
    return r;
  }
  const std::size_t name_size = get_be(received.subspan(1, 2));
  const std::size_t total = named_prefix_size + name_size + 8;
  if (name_size > max_name_size) {
    return named_invalid("name too long", total - std::min(total, received.size()));
  }
  if (received.size() < total) {
    r.needed = total - received.size();
    return r;
  }
  const std::string_view name = as_text(received.subspan(named_prefix_size, name_size));
  if (name.empty()) return named_invalid("empty name");
  if (has_nul(name)) return named_invalid("NUL in name");
  r.what = named_request::kind::complete;
  r.name = name;
  r.offset = get_be(received.subspan(named_prefix_size + name_size, 8));
  return r;
}

bool is_plain_name(std::string_view name) noexcept {
  constexpr std::size_t name_max = 255;  // NAME_MAX
  if (name.empty() || name.size() > name_max || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

std::vector<std::byte> encode_named_request(std::string_view name, std::uint64_t offset) {
  std::vector<std::byte> out{named_command};
  put_be(out, name.size(), 2);
  put_bytes(out, std::as_bytes(std::span(name)));
  put_be(out, offset, 8);
  return out;
}

std::array<std::byte, named_header_size> encode_header(const named_header& header) {
  std::vector<std::byte> out{named_command, static_cast<std::byte>(header.code)};
  put_be(out, header.size, 8);
  put_bytes(out, header.sha256);
  std::array<std::byte, named_header_size> bytes;
  std::copy(out.begin(), out.end(), bytes.begin());
  return bytes;
}

std::optional<named_header> decode_header(std::span<const std::byte> bytes) {
  if (bytes.size() != named_header_size || bytes[0] != named_command) return std::nullopt;
  const auto code = std::to_integer<std::uint8_t>(bytes[1]);
  if (!known_status(code)) return std::nullopt;
  named_header header{static_cast<status>(code), get_be(bytes.subspan(2, 8)), {}};
  std::copy_n(bytes.begin() + 10, header.sha256.size(), header.sha256.begin());
  return header;
}

namespace udp {

std::optional<packet> decode(std::span<const std::byte> bytes) {
  if (bytes.empty()) return std::nullopt;
  const auto body = bytes.subspan(1);
  const auto u64 = [&](std::size_t at) { return get_be(body.subspan(at, 8)); };
  switch (static_cast<char>(bytes[0])) {
    case 'O': {
      constexpr std::size_t name_at = 8 + 8 + sizeof(cookie) + 2;
      if (bytes.size() < open_min_size) return std::nullopt;
      const std::size_t name_size = get_be(body.subspan(name_at - 2, 2));
      if (name_size > max_name_size || name_at + name_size > body.size()) return std::nullopt;
      const std::string_view name = as_text(body.subspan(name_at, name_size));
      if (has_nul(name)) return std::nullopt;
      return open_transfer{u64(0), u64(8), get_array<sizeof(cookie)>(body.subspan(16)), name};
    }
    case 'G':
      if (body.size() != 24) return std::nullopt;
      return get_chunks{u64(0), u64(8), u64(16)};
    case 'C':
      if (body.size() != 8) return std::nullopt;
      return close_transfer{u64(0)};
    case 'R': {
      if (body.size() != 27) return std::nullopt;
      const auto code = std::to_integer<std::uint8_t>(body[8]);
      if (!known_status(code)) return std::nullopt;
      return ready{u64(0), static_cast<status>(code), get_be(body.subspan(9, 8)),
                   get_be(body.subspan(17, 8)),
                   static_cast<std::uint16_t>(get_be(body.subspan(25, 2)))};
    }
    case 'D':
      if (body.size() < 16 || body.size() > 16 + chunk_size) return std::nullopt;
      return chunk{u64(0), u64(8), body.subspan(16)};
    case 'E': {
      if (body.size() != 16 + 32) return std::nullopt;
      end_of_file eof{u64(0), u64(8), {}};
      std::copy_n(body.begin() + 16, eof.sha256.size(), eof.sha256.begin());
      return eof;
    }
    case 'X':
      if (body.size() != 8) return std::nullopt;
      return unknown_transfer{u64(0)};
    case 'K':
      if (body.size() != 8 + sizeof(cookie)) return std::nullopt;
      return retry{u64(0), get_array<sizeof(cookie)>(body.subspan(8))};
    case 'F': {
      if (body.size() != 8 + 1) return std::nullopt;
      const auto code = std::to_integer<std::uint8_t>(body[8]);
      if (!known_status(code)) return std::nullopt;
      return transfer_failed{u64(0), static_cast<status>(code)};
    }
    default:
      return std::nullopt;
  }
}

void encode(const packet& p, std::vector<std::byte>& out) {
  out.clear();
  out.push_back(type_of(p));
  std::visit(overloaded{
                 [&](const open_transfer& o) {
                   put_be(out, o.nonce, 8);
                   put_be(out, o.offset, 8);
                   put_bytes(out, o.proof);
                   put_be(out, o.name.size(), 2);
                   put_bytes(out, std::as_bytes(std::span(o.name)));
                   if (out.size() < open_min_size) out.resize(open_min_size, std::byte{0});
                 },
                 [&](const get_chunks& g) {
                   put_be(out, g.transfer, 8);
                   put_be(out, g.first, 8);
                   put_be(out, g.wanted, 8);
                 },
                 [&](const close_transfer& c) { put_be(out, c.transfer, 8); },
                 [&](const ready& r) {
                   put_be(out, r.nonce, 8);
                   out.push_back(static_cast<std::byte>(r.code));
                   put_be(out, r.transfer, 8);
                   put_be(out, r.size, 8);
                   put_be(out, r.chunk_bytes, 2);
                 },
                 [&](const chunk& c) {
                   put_be(out, c.transfer, 8);
                   put_be(out, c.seq, 8);
                   put_bytes(out, c.payload);
                 },
                 [&](const end_of_file& e) {
                   put_be(out, e.transfer, 8);
                   put_be(out, e.size, 8);
                   put_bytes(out, e.sha256);
                 },
                 [&](const unknown_transfer& u) { put_be(out, u.transfer, 8); },
                 [&](const retry& r) {
                   put_be(out, r.nonce, 8);
                   put_bytes(out, r.proof);
                 },
                 [&](const transfer_failed& f) {
                   put_be(out, f.transfer, 8);
                   out.push_back(static_cast<std::byte>(f.code));
                 },
             },
             p);
}

}  // namespace udp

}  // namespace switchboard::services::files::protocol
