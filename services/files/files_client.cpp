// files-client: the seed's protocol, the named extension and UDP.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <limits>
#include <vector>

#include <switchboard/log.hpp>
#include "files.hpp"
#include "udp.hpp"

namespace switchboard::services::files {
namespace {

using protocol::seed_command;
using protocol::status;

// The output file, cut where the download starts: the download replaces
// everything from there on.
struct output_file {
  unique_fd fd;
  std::uint64_t start = 0;
};

result<output_file> open_output(const client_options& options) {
  output_file out;
  out.fd = unique_fd(::open(options.output.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!out.fd) return errno_code(errno);
  if (options.resume) {
    struct stat info {};
    if (::fstat(out.fd.get(), &info) != 0) return errno_code(errno);
    out.start = static_cast<std::uint64_t>(info.st_size);
  } else if (options.offset) {
    out.start = *options.offset;
  }
  if (::ftruncate(out.fd.get(), static_cast<off_t>(out.start)) != 0) return errno_code(errno);
  return out;
}

result<void> write_at(int fd, std::span<const std::byte> bytes, std::uint64_t at) {
  while (!bytes.empty()) {
    const ssize_t n = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(at));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_code(errno);
    bytes = bytes.subspan(static_cast<std::size_t>(n));
    at += static_cast<std::uint64_t>(n);
  }
  return {};
}

// Writes what the connection brings at `at` on, until EOF: how many bytes.
// What came before an error stays written, ready for --resume.
task<result<std::uint64_t>> receive_into(stream& conn, int out, std::uint64_t at) {
  std::vector<std::byte> buf(256 * 1024);
  std::uint64_t total = 0;
  for (;;) {
    // read_exact comes back short only at EOF. (A read_some that drained the
    // socket can miss an EOF that arrived with the last bytes on epoll.)
    auto n = co_await conn.read_exact(buf);
    if (!n) co_return n.error();
    if (auto written = write_at(out, std::span(buf).first(*n), at + total); !written) {
      co_return written.error();
    }
    total += *n;
    if (*n < buf.size()) co_return total;
  }
}

task<result<stream>> connect_logged(const client_options& options) {
  auto conn = co_await connect_to_server(options);
  if (!conn) log("files-client: connect: {}", conn.error().message());
  co_return conn;
}

void log_lost(const client_options& options, const output_file& out, std::error_code error) {
  struct stat info {};
  ::fstat(out.fd.get(), &info);
  log("files-client: connection lost: {}; {} has {} bytes: run again with --resume",
      error.message(), options.output, info.st_size);
}

// Checks the output file against the server's size and SHA-256, and prints
// the summary.
task<int> verify(const client_options& options, const output_file& out, std::uint64_t received,
                 std::uint64_t size, const digest& expected) {
  if (out.start + received != size) {
    log("files-client: {} has {} bytes, the server's file {}", options.output,
        out.start + received, size);
    co_return exit_failure;
  }
  auto actual = co_await hash_file(out.fd.get(), size);
  if (!actual) {
    log("files-client: {}: {}", options.output, actual.error().message());
    co_return exit_failure;
  }
  if (*actual != expected) {
    log("files-client: {}: SHA-256 mismatch: the server's file is {}, this one {}",
        options.output, to_hex(expected), to_hex(*actual));
    co_return exit_failure;
  }
  fmt::print("{}: received {} bytes from offset {}; {} bytes, sha256 {} verified\n",
             options.output, received, out.start, size, to_hex(expected));
  co_return 0;
}

task<int> seed_client(const client_options& options, const output_file& out) {
  const seed_command command = options.resume   ? seed_command::from_local_size
                               : options.offset ? seed_command::from_offset
                                                : seed_command::whole_file;
  const auto request = protocol::encode_seed_request(command, static_cast<std::int64_t>(out.start));
  if (!request) {
    log("files-client: the seed's protocol cannot say offset {} (ten digits at most): use --name",
        out.start);
    co_return exit_usage;
  }
  auto conn = co_await connect_logged(options);
  if (!conn) co_return exit_failure;
  if (auto sent = co_await conn->write_all(*request); !sent) {
    log("files-client: send: {}", sent.error().message());
    co_return exit_failure;
  }
  auto received = co_await receive_into(*conn, out.fd.get(), out.start);
  if (!received) {
    log_lost(options, out, received.error());
    co_return exit_failure;
  }
  // The seed's protocol has no error channel: a refusal is an empty answer too.
  fmt::print("{}: received {} bytes from offset {}; it has {} bytes now\n", options.output,
             *received, out.start, out.start + *received);
  co_return 0;
}

task<int> named_client(const client_options& options, const output_file& out) {
  auto conn = co_await connect_logged(options);
  if (!conn) co_return exit_failure;
  if (auto sent = co_await conn->write_all(protocol::encode_named_request(*options.name, out.start));
      !sent) {
    log("files-client: send: {}", sent.error().message());
    co_return exit_failure;
  }
  std::array<std::byte, protocol::named_header_size> raw;
  auto got = co_await conn->read_exact(raw);
  if (!got || *got != raw.size()) {
    log("files-client: the server closed without a header ({}): does it serve named files "
        "(files --root DIR)?",
        got ? "end of stream" : got.error().message());
    co_return exit_failure;
  }
  const auto header = protocol::decode_header(raw);
  if (!header) {
    log("files-client: the server's answer is not a files header");
    co_return exit_failure;
  }
  if (header->code == status::offset_past_end) {
    log("files-client: offset {} is past the end of {} ({} bytes)", out.start, *options.name,
        header->size);
    co_return exit_failure;
  }
  if (header->code != status::ok) {
    log("files-client: {}: {}", *options.name, protocol::describe(header->code));
    co_return exit_failure;
  }
  auto received = co_await receive_into(*conn, out.fd.get(), out.start);
  if (!received) {
    log_lost(options, out, received.error());
    co_return exit_failure;
  }
  co_return co_await verify(options, out, *received, header->size, header->sha256);
}

task<int> udp_client(const client_options& options, const output_file& out) {
  auto downloaded = co_await udp_download(options, out.fd.get(), out.start);
  if (!downloaded) co_return exit_failure;
  co_return co_await verify(options, out, downloaded->received, downloaded->size,
                            downloaded->sha256);
}

}  // namespace

task<int> client(const client_options& options) {
  if (options.udp && !options.unix_path.empty()) {
    log("files-client: --udp needs --host and --port, not --unix");
    co_return exit_usage;
  }
  const bool seed = !options.udp && !options.name;
  if (options.offset && *options.offset > static_cast<std::uint64_t>(
                                              seed ? protocol::max_seed_offset
                                                   : std::numeric_limits<std::int64_t>::max())) {
    log("files-client: --offset {} is more than the {} can say", *options.offset,
        seed ? "seed's protocol (ten digits; use --name)" : "file system");
    co_return exit_usage;
  }
  auto out = open_output(options);
  if (!out) {
    log("files-client: {}: {}", options.output, out.error().message());
    co_return exit_failure;
  }
  if (options.udp) co_return co_await udp_client(options, *out);
  if (options.name) co_return co_await named_client(options, *out);
  co_return co_await seed_client(options, *out);
}

}  // namespace switchboard::services::files
