// The files service's wire formats as pure functions over bytes: no sockets,
// no runtime, so that they can be unit-tested and fuzzed. files.hpp describes
// the three protocols (the seed's, the named extension, and UDP) in full.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <variant>
#include <vector>

namespace switchboard::services::files::protocol {

// A SHA-256 digest.
using digest = std::array<std::byte, 32>;

// ---- The seed's protocol (seed 004 b) ------------------------------------

inline constexpr std::size_t command_size = 2;
inline constexpr std::size_t offset_field_size = 10;
// The largest offset the seed's ten characters can say.
inline constexpr std::int64_t max_seed_offset = 9'999'999'999;

enum class seed_command : char { whole_file = '0', from_offset = '1', from_local_size = '2' };

struct seed_request {
  enum class kind { need_more, whole_file, from_offset, invalid };
  kind what = kind::need_more;
  std::size_t needed = 0;    // need_more: bytes still missing from the part being read
  std::int64_t offset = 0;   // from_offset: where to start, >= 0
  std::string_view why;      // invalid: a short reason for the log
};

// Parses what a seed client has sent so far: the 2-byte command, then for
// commands 1 and 2 the 10-byte offset field. `needed` never reaches past the
// part being read (the command, then the offset), so a reader that asks for
// exactly that much never reads into the next request. Bytes past the
// request are not looked at.
seed_request parse_seed_request(std::span<const std::byte> received);

// The 2 or 12 bytes the seed's client sends: "%d" of the command and of
// `offset`, NUL-terminated when it fits, zero-filled after; nullopt when the
// offset is negative or needs more than ten characters.
std::optional<std::vector<std::byte>> encode_seed_request(seed_command command,
                                                          std::int64_t offset = 0);

// ---- The named extension over TCP ------------------------------------------

// The first byte of a named request: no "%d" output can begin with it.
inline constexpr std::byte named_command{'N'};
// The longest name the kernel would open (PATH_MAX without its NUL).
inline constexpr std::size_t max_name_size = 4095;
inline constexpr std::size_t named_request_max_size = 1 + 2 + max_name_size + 8;

enum class status : std::uint8_t {
  ok = 0,
  not_found = 1,
  forbidden = 2,
  bad_request = 3,
  offset_past_end = 4,
  unreadable = 5,  // the file is there but reading or hashing it failed
  changed = 6,     // the file changed while it was being served: start again from 0
  busy = 7,        // its digest was not ready within the server's --hash-timeout: try later
};

// "ok", "not found", "forbidden", ...
std::string_view describe(status code) noexcept;

struct named_request {
  enum class kind { need_more, complete, invalid };
  kind what = kind::need_more;
  std::size_t needed = 0;  // need_more: bytes still missing
  std::size_t skip = 0;    // invalid: bytes of the request still to come, to read and discard
  std::string_view name;   // complete: points into the received bytes
  std::uint64_t offset = 0;
  std::string_view why;    // invalid: a short reason for the log
};

// Parses 'N', a 2-byte big-endian name length (1 to max_name_size), the name
// (no NUL) and an 8-byte big-endian offset. Bytes past the request are not
// looked at.
named_request parse_named_request(std::span<const std::byte> received);

// True for a single path component of [A-Za-z0-9._-], 1 to 255 bytes, other
// than "." and "..": the only names served where the kernel has no openat2.
bool is_plain_name(std::string_view name) noexcept;

// The request for `name` from `offset`.
std::vector<std::byte> encode_named_request(std::string_view name, std::uint64_t offset);

// What the server answers a named request with, before any data.
struct named_header {
  status code = status::ok;
  std::uint64_t size = 0;  // the file's size (ok, offset_past_end), else 0
  digest sha256{};         // the whole file's SHA-256 (ok), else zeros
};
inline constexpr std::size_t named_header_size = 1 + 1 + 8 + 32;

std::array<std::byte, named_header_size> encode_header(const named_header& header);
// nullopt unless `bytes` is exactly a header with a known status.
std::optional<named_header> decode_header(std::span<const std::byte> bytes);

// ---- The UDP protocol (seed 004 exercise 2) ---------------------------------

namespace udp {

// Payload bytes per data packet: with the headers it stays under IPv6's
// minimum MTU of 1280, so no datagram is ever fragmented.
inline constexpr std::size_t chunk_size = 1200;
// Chunks one request may ask for (the bits of get_chunks::wanted).
inline constexpr std::size_t window = 64;
// An open_transfer is padded to this size, more than a ready or retry answer,
// so that the handshake never sends more than it received.
inline constexpr std::size_t open_min_size = 64;
// The proof that a client receives at its address (files.hpp): all zeros
// until the server has handed one out.
using cookie = std::array<std::byte, 16>;
// The largest datagram either side sends.
inline constexpr std::size_t max_packet_size = 1 + 8 + 8 + chunk_size;

// Client to server: start a transfer of `name` ("" is the --file) from `offset`.
struct open_transfer {
  std::uint64_t nonce = 0;  // the client's, echoed in ready so it knows its answer
  std::uint64_t offset = 0;
  cookie proof{};           // from the server's retry; zeros the first time
  std::string_view name;
};
// Client to server: send the chunks first + i for every bit i set in
// `wanted`; chunk `count` (one past the last) is the end marker.
struct get_chunks {
  std::uint64_t transfer = 0;
  std::uint64_t first = 0;
  std::uint64_t wanted = 0;
};
// Client to server: the transfer is done, forget it.
struct close_transfer {
  std::uint64_t transfer = 0;
};
// Server to client: the answer to an open_transfer.
struct ready {
  std::uint64_t nonce = 0;
  status code = status::ok;
  std::uint64_t transfer = 0;  // the id to quote in get_chunks and close_transfer (ok only)
  std::uint64_t size = 0;      // the whole file's size (ok, offset_past_end)
  std::uint16_t chunk_bytes = 0;  // payload bytes per chunk (ok only)
};
// Server to client: chunk `seq` of the transfer, bytes offset + seq * chunk_bytes on.
struct chunk {
  std::uint64_t transfer = 0;
  std::uint64_t seq = 0;
  std::span<const std::byte> payload;
};
// Server to client: the end marker, with what the client checks its file against.
struct end_of_file {
  std::uint64_t transfer = 0;
  std::uint64_t size = 0;
  digest sha256{};
};
// Server to client: a get_chunks or close_transfer named a transfer the server does not have
// (expired, or never opened): open again to go on.
struct unknown_transfer {
  std::uint64_t transfer = 0;
};
// Server to client: the answer to an open without a valid cookie: send the
// open again with this one. Nothing else happens on the server.
struct retry {
  std::uint64_t nonce = 0;
  cookie proof{};
};
// Server to client: the transfer ended on the server's side (changed: the
// file changed meanwhile; busy: its digest was not ready in time;
// unreadable); the server has forgotten it.
struct transfer_failed {
  std::uint64_t transfer = 0;
  status code = status::unreadable;
};

using packet = std::variant<open_transfer, get_chunks, close_transfer, ready, chunk, end_of_file,
                            unknown_transfer, retry, transfer_failed>;

// The packet in `bytes`, or nullopt when it is not exactly one well-formed packet.
std::optional<packet> decode(std::span<const std::byte> bytes);
// Replaces `out` with the bytes of `p` (an open_transfer is padded to open_min_size).
void encode(const packet& p, std::vector<std::byte>& out);

}  // namespace udp

}  // namespace switchboard::services::files::protocol
