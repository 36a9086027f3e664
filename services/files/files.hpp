// files (seed 004 b and exercise 2): a resumable download, wire-compatible
// with the seed's "broken FTP" client, plus a named extension with a size and
// a SHA-256, and the same download over UDP.
//
//   build/switchboard files --file source_file.txt --root ./shared   # port 5001
//   build/switchboard files-client --output destination_file.txt --resume
//   build/switchboard files-client --name big.iso --resume           # verified
//   build/switchboard files --udp & build/switchboard files-client --udp
//
// The seed's protocol (TCP). The client sends exactly 2 bytes, what its
// sprintf("%d") left in a 2-byte buffer: "0\0" asks for the whole file;
// "1\0" or "2\0" (1: an offset the user typed, 2: the size of the client's
// partial file; the server treats them alike) are followed by exactly 10
// more bytes, sprintf("%d") of the offset in an uninitialised buffer: an
// optional '-', decimal digits, a NUL, then junk (ten digits leave no NUL).
// The server sends the --file from that offset and closes. The client writes
// every byte it receives into its file, so there is no error channel: an
// offset equal to the size is the normal answer to a complete file (nothing
// is sent); a negative offset, one past the end, a field that is not "%d"
// output, or an unknown command gets the connection closed without data and
// a line in the server's log. Offsets are 64-bit: ten digits reach
// 9,999,999,999. The 2-byte command is one request (--request-timeout from
// its first byte); the seed's client asks its user for the offset only after
// sending the command, so the wait in between falls under --idle-timeout, and
// the offset is a request of its own. While the file streams, each send of
// up to 1 MiB must finish within --send-timeout.
//
// The named extension (TCP, only with --root DIR). A request starts with 'N',
// which no "%d" output can begin with:
//   'N' | name length: u16 | name: 1..4095 bytes, no NUL | offset: u64
// (integers big-endian). The name is opened beneath --root with openat2
// (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS; where the
// kernel lacks openat2, only a plain name of [A-Za-z0-9._-] is accepted);
// only regular files are served. The answer is a 42-byte header, then on ok
// the file from the offset, then close:
//   'N' | status: u8 | file size: u64 | SHA-256 of the whole file: 32 bytes
// status 0 ok, 1 not found, 2 forbidden (outside --root, a symlink, not a
// regular file), 3 bad request, 4 offset past the end (the size is given so
// the client can start over), 5 unreadable, 6 changed (the file changed
// while it was hashed), 7 busy (no digest within --hash-timeout); the size
// and digest are zero where they do not apply.
//
// Digests (digest_service.hpp). A digest is computed once per version of a
// file (device, inode, size, modification time) and cached (the 4,096 most
// recently used). Everyone who asks for the same version waits for the same
// hash; one task hashes every file, one 256 KiB piece per loop turn, the
// --max-hashes (4) with the fewest bytes left at a time, so a small file is
// not held up by big ones and other clients go on. A client waits at most
// --hash-timeout (60 s) and is then refused as busy; a TCP client that
// hangs up stops waiting, and a hash nobody waits for any more stops. (A
// client that only shuts down its sending side looks the same until the
// server has something to send: it counts as gone too, as in nginx.)
//
// The UDP protocol (files --udp). Every datagram starts with its type:
//   client  'O' open   nonce: u64 | offset: u64 | cookie: 16 bytes |
//                      name length: u16 | name, zero-padded to 64 bytes
//                      ("" is the --file; other names need --root, as over
//                      TCP)
//           'G' get    transfer: u64 | first: u64 | wanted: u64 bitmap
//           'C' close  transfer: u64
//   server  'K' retry  nonce: u64 | cookie: 16 bytes
//           'R' ready  nonce: u64 | status: u8 | transfer: u64 | size: u64 |
//                      chunk bytes: u16
//           'D' chunk  transfer: u64 | seq: u64 | up to 1200 bytes
//           'E' end    transfer: u64 | size: u64 | SHA-256: 32 bytes
//           'X' unknown transfer: u64
//           'F' failed transfer: u64 | status: u8
// An open must carry a cookie the server sent to the client's address and
// port within the last 2 minutes (cookie.hpp); the first open carries zeros
// and is answered only by retry, with a cookie, and the client sends its
// open again with it. Until then the server opens no file, keeps no state
// and starts no hash, so forged source addresses cost it one small reply
// (25 bytes for the 64 received), never a transfer. A valid open is
// answered by ready, with a random transfer id that only the client's
// address has seen. Chunk seq holds bytes offset + seq * 1200 on;
// a get asks for chunks first + i for each bit i of `wanted` (at most 64),
// and chunk number `count` (one past the last) is the end marker with the
// size and digest. The server sends only what a get from the transfer's own
// address asks for, so it never sends more than requested, and a forged
// source address never receives data; the client retransmits its get when
// chunks are missing after a timeout, writes chunks in order (so an
// interrupted download resumes from the size of its file), and checks the
// digest. When the file shrinks or changes during the transfer, or its
// digest is not ready --hash-timeout after the open, the server answers
// failed (6 changed, 7 busy, 5 unreadable)
// to that get and every later one, and the client says so. A transfer idle
// for 30 s is forgotten; when 256 are open, the address (IPv6: the /64)
// holding the most gives up its least recently used one, so a client with
// one transfer keeps it unless every source holds no more than one. A get
// for a forgotten transfer is answered 'X' and the client opens again from
// where it got to. Every datagram goes through the datagram_guard, one token
// each: the files service's default --udp-rate is 20,000 datagrams per second
// per source (24 MB/s of chunks).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <switchboard/net.hpp>
#include <switchboard/task.hpp>

#include "../common/cli.hpp"
#include <switchboard/server.hpp>
#include "cookie.hpp"
#include "digest_service.hpp"

namespace switchboard::services::files {

inline constexpr std::uint16_t default_port = 5001;
// The files service's --udp-rate default, in datagrams per second per source.
inline constexpr double default_udp_rate = 20'000;

struct server_config {
  std::string file = "source_file.txt";  // what the seed's protocol serves
  std::string root;                      // the named extension's directory; "" turns it off
  bool udp = false;
  digest_service::settings hashing;      // --max-hashes
  // How long a client waits for a digest (--hash-timeout); 0: as long as it stays.
  milliseconds hash_timeout = std::chrono::seconds(60);
};

// What the UDP sockets of one server have done, for the statistics line.
struct udp_counters {
  std::uint64_t transfers = 0;  // open now, on all sockets
  std::uint64_t retries = 0;    // opens answered with a cookie (they had no valid one)
  std::uint64_t evicted = 0;    // transfers forgotten to make room for another
};

// What every session of one server shares.
struct server_context {
  explicit server_context(server_config c) : config(std::move(c)), digests(config.hashing) {}

  server_config config;
  unique_fd root;  // --root, opened once at start
  digest_service digests;  // its run() goes on for as long as the server
  cookie_jar cookies;      // for UDP opens
  udp_counters udp;
};

// Serves one TCP client: the seed's request or a named one, then the file.
task<void> session(connection& conn, server_context& context);

// Serves the UDP protocol on one socket until cancelled.
task<void> serve_udp(datagram_socket& socket, server_state& server, server_context& context);

struct client_options : services::client_options {
  std::string output = "destination_file.txt";
  std::optional<std::string> name;     // the named extension (or, over UDP, a file under --root)
  bool resume = false;                 // from the size of the output file
  std::optional<std::uint64_t> offset; // from this offset (the seed's command 1)
  bool udp = false;
};

// Downloads into the output file and prints a one-line summary. Returns 0
// on success; 1 on failure, or when the SHA-256 (named or UDP) does not match.
task<int> client(const client_options& options);

void add_commands(CLI::App& app, command_list& commands);

}  // namespace switchboard::services::files
