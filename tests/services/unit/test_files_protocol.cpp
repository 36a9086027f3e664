// The files service's parsers and encoders, as pure functions over bytes.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "files/protocol.hpp"

using namespace switchboard::services::files::protocol;
using kind = seed_request::kind;

namespace {

std::vector<std::byte> bytes_of(std::string_view text) {
  const auto view = std::as_bytes(std::span(text));
  return {view.begin(), view.end()};
}

// "1\0" or "2\0", then what the seed's sprintf("%d", offset) leaves in a
// 10-byte buffer that held junk before.
std::vector<std::byte> seed_offset_request(char command, const char* printed) {
  std::string request{command, '\0'};
  char field[10];
  std::memset(field, 'J', sizeof field);
  std::memcpy(field, printed, std::min(std::strlen(printed) + 1, sizeof field));
  request.append(field, sizeof field);
  return bytes_of(request);
}

seed_request parse(const std::vector<std::byte>& bytes) { return parse_seed_request(bytes); }

}  // namespace

TEST_CASE("\"0\\0\" asks for the whole file", "[unit][files]") {
  const auto r = parse(bytes_of(std::string("0\0", 2)));
  CHECK(r.what == kind::whole_file);
}

TEST_CASE("\"1\\0\" and \"2\\0\" with \"12345\\0junk\" ask for the file from byte 12345",
          "[unit][files]") {
  for (char command : {'1', '2'}) {
    const auto r = parse(seed_offset_request(command, "12345"));
    CHECK(r.what == kind::from_offset);
    CHECK(r.offset == 12345);
  }
  CHECK(parse(seed_offset_request('1', "0")).offset == 0);
}

TEST_CASE("ten digits leave no NUL and still parse, past 32 bits", "[unit][files]") {
  const auto r = parse(seed_offset_request('1', "9999999999"));
  CHECK(r.what == kind::from_offset);
  CHECK(r.offset == 9'999'999'999);
  CHECK(parse(seed_offset_request('1', "5368709020")).offset == 5'368'709'020);
}

TEST_CASE("offsets that \"%d\" of a valid offset cannot produce are invalid", "[unit][files]") {
  for (const char* printed : {"-1", "-2147483", "abc", "", "12a", " 12", "+5", "0x10", "007", "-"}) {
    INFO("offset field \"" << printed << "\"");
    const auto r = parse(seed_offset_request('2', printed));
    CHECK(r.what == kind::invalid);
    CHECK_FALSE(r.why.empty());
  }
  CHECK(parse(seed_offset_request('2', "-1")).why == "negative offset");
}

TEST_CASE("unknown commands are invalid from their first wrong byte", "[unit][files]") {
  CHECK(parse(bytes_of("a")).what == kind::invalid);
  CHECK(parse(bytes_of("abc")).what == kind::invalid);
  CHECK(parse(bytes_of("10")).what == kind::invalid);  // sprintf("%d", 10) in 2 bytes
  CHECK(parse(bytes_of("3")).what == kind::invalid);
  CHECK(parse(bytes_of(std::string("3\0", 2))).what == kind::invalid);
  CHECK(parse(bytes_of("N")).what == kind::invalid);
}

TEST_CASE("byte-by-byte arrival asks for exactly the rest of each part", "[unit][files]") {
  const auto request = seed_offset_request('1', "4242");
  std::vector<std::size_t> needs;
  for (std::size_t have = 0; have < request.size(); ++have) {
    const auto r = parse_seed_request(std::span(request).first(have));
    REQUIRE(r.what == kind::need_more);
    needs.push_back(r.needed);
  }
  // The command first (2 bytes), then the offset (10): never past a part's end.
  CHECK(needs == std::vector<std::size_t>{2, 1, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1});
  const auto done = parse(request);
  CHECK(done.what == kind::from_offset);
  CHECK(done.offset == 4242);
  CHECK(parse_seed_request(std::span(request).first(1)).needed == 1);
}

TEST_CASE("the seed request encoder writes what the seed's client writes", "[unit][files]") {
  CHECK(*encode_seed_request(seed_command::whole_file) == bytes_of(std::string("0\0", 2)));
  const auto resume = encode_seed_request(seed_command::from_local_size, 12345);
  REQUIRE(resume);
  CHECK(resume->size() == 12);
  CHECK(parse(*resume).offset == 12345);
  CHECK(parse(*encode_seed_request(seed_command::from_offset, 9'999'999'999)).offset ==
        9'999'999'999);
  CHECK_FALSE(encode_seed_request(seed_command::from_offset, 10'000'000'000));
  CHECK_FALSE(encode_seed_request(seed_command::from_offset, -1));
}

TEST_CASE("a named request round-trips and grows byte by byte", "[unit][files]") {
  const auto request = encode_named_request("dir/big file.bin", 5'000'000'000);
  for (std::size_t have = 0; have < request.size(); ++have) {
    const auto r = parse_named_request(std::span(request).first(have));
    REQUIRE(r.what == named_request::kind::need_more);
    CHECK(r.needed > 0);
    CHECK(have + r.needed <= request.size());
  }
  const auto r = parse_named_request(request);
  REQUIRE(r.what == named_request::kind::complete);
  CHECK(r.name == "dir/big file.bin");
  CHECK(r.offset == 5'000'000'000);
}

TEST_CASE("named requests with no name, a NUL or an over-long name are invalid", "[unit][files]") {
  CHECK(parse_named_request(encode_named_request("", 0)).why == "empty name");
  CHECK(parse_named_request(encode_named_request(std::string("a\0b", 3), 0)).why == "NUL in name");
  const std::string long_name(5000, 'x');
  const auto request = encode_named_request(long_name, 0);
  // Refused from the length alone; the rest is to be read and dropped.
  const auto r = parse_named_request(std::span(request).first(3));
  CHECK(r.what == named_request::kind::invalid);
  CHECK(r.why == "name too long");
  CHECK(r.skip == 5000 + 8);
  CHECK(parse_named_request(encode_named_request(std::string(max_name_size, 'x'), 1)).what ==
        named_request::kind::complete);
  CHECK(parse_named_request(bytes_of("G")).what == named_request::kind::invalid);
}

TEST_CASE("the named header round-trips and rejects what is not one", "[unit][files]") {
  named_header header{status::ok, 123456789012, {}};
  header.sha256[0] = std::byte{0xab};
  header.sha256[31] = std::byte{0xcd};
  const auto bytes = encode_header(header);
  const auto back = decode_header(bytes);
  REQUIRE(back);
  CHECK(back->code == status::ok);
  CHECK(back->size == 123456789012);
  CHECK(back->sha256 == header.sha256);
  auto wrong = bytes;
  wrong[1] = std::byte{99};
  CHECK_FALSE(decode_header(wrong));
  CHECK_FALSE(decode_header(std::span(bytes).first(41)));
}

TEST_CASE("plain names are single harmless components", "[unit][files]") {
  for (const char* ok : {"a.txt", "source_file.txt", "x-1_2.tar.gz", "..a"}) CHECK(is_plain_name(ok));
  for (const char* bad : {"", ".", "..", "../x", "a/b", "/etc/passwd", "a b", "é"}) {
    INFO(bad);
    CHECK_FALSE(is_plain_name(bad));
  }
  CHECK_FALSE(is_plain_name(std::string(256, 'a')));
}

TEST_CASE("every UDP packet round-trips through encode and decode", "[unit][files][udp]") {
  namespace udp = switchboard::services::files::protocol::udp;
  const std::vector<std::byte> payload(udp::chunk_size, std::byte{7});
  digest sha{};
  sha[5] = std::byte{1};
  udp::cookie cookie{};
  cookie[15] = std::byte{9};
  const std::vector<udp::packet> packets{
      udp::open_transfer{1, 2, {}, "name.bin"},
      udp::open_transfer{3, 0, cookie, ""},
      udp::get_chunks{4, 5, 0x8000'0000'0000'0001},
      udp::close_transfer{6},
      udp::ready{7, status::ok, 8, 9, 1200},
      udp::chunk{10, 11, payload},
      udp::end_of_file{12, 13, sha},
      udp::unknown_transfer{14},
      udp::retry{15, cookie},
      udp::transfer_failed{16, status::changed},
      udp::transfer_failed{17, status::busy},
  };
  std::vector<std::byte> bytes;
  for (const auto& p : packets) {
    udp::encode(p, bytes);
    INFO("packet type " << static_cast<char>(bytes[0]));
    CHECK(bytes.size() <= udp::max_packet_size);
    auto back = udp::decode(bytes);
    REQUIRE(back);
    CHECK(back->index() == p.index());
    std::vector<std::byte> again;
    udp::encode(*back, again);
    CHECK(again == bytes);
  }
}

TEST_CASE("UDP opens are padded past the size of their answers", "[unit][files][udp]") {
  namespace udp = switchboard::services::files::protocol::udp;
  std::vector<std::byte> open_bytes, ready_bytes, retry_bytes;
  udp::encode(udp::open_transfer{1, 0, {}, ""}, open_bytes);
  udp::encode(udp::ready{1, status::ok, 2, 3, 1200}, ready_bytes);
  udp::encode(udp::retry{1, {}}, retry_bytes);
  CHECK(open_bytes.size() == udp::open_min_size);
  CHECK(ready_bytes.size() < open_bytes.size());
  CHECK(retry_bytes.size() < open_bytes.size());
  // A short open (no padding) is not answered at all.
  CHECK_FALSE(udp::decode(std::span(open_bytes).first(udp::open_min_size - 1)));
}

TEST_CASE("malformed UDP packets are rejected", "[unit][files][udp]") {
  namespace udp = switchboard::services::files::protocol::udp;
  CHECK_FALSE(udp::decode({}));
  CHECK_FALSE(udp::decode(bytes_of("Z12345678")));
  CHECK_FALSE(udp::decode(bytes_of("G1234567")));
  std::vector<std::byte> oversized;
  udp::encode(udp::chunk{1, 2, std::vector<std::byte>(udp::chunk_size, std::byte{0})}, oversized);
  oversized.push_back(std::byte{0});
  CHECK_FALSE(udp::decode(oversized));
  std::vector<std::byte> open_bytes;
  udp::encode(udp::open_transfer{1, 0, {}, "abc"}, open_bytes);
  open_bytes[1 + 8 + 8 + sizeof(udp::cookie)] = std::byte{0xff};  // a name length past the datagram
  CHECK_FALSE(udp::decode(open_bytes));
  std::vector<std::byte> failed_bytes;
  udp::encode(udp::transfer_failed{1, status::changed}, failed_bytes);
  failed_bytes.back() = std::byte{99};  // no such status
  CHECK_FALSE(udp::decode(failed_bytes));
}
