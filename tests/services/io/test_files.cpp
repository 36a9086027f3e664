// The files service as its users meet it: a separate server process on the
// backend under test, driven by files-client, by raw sockets that send
// exactly what the seed's C client sends, and over UDP through a relay that
// loses and reorders datagrams.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../../support/async.hpp"
#include "../../support/files.hpp"
#include "files/protocol.hpp"

using namespace switchboard::testing;
namespace protocol = switchboard::services::files::protocol;

namespace {

// Bytes that differ at every offset, so that a misplaced byte shows.
std::string pattern(std::size_t size, unsigned seed = 1) {
  std::string bytes(size, '\0');
  std::uint32_t state = seed;
  for (char& c : bytes) {
    state = state * 1103515245u + 12345u;
    c = static_cast<char>(state >> 24);
  }
  return bytes;
}

// Writes pattern(size, seed) to `path` and returns it.
std::string write_pattern(const std::string& path, std::size_t size, unsigned seed = 1) {
  std::string content = pattern(size, seed);
  write_file(path, content);
  return content;
}

std::size_t random_cut(std::size_t size) {
  std::random_device device;
  return std::uniform_int_distribution<std::size_t>(1, size - 1)(device);
}

struct files_server {
  child_process process;
  std::uint16_t port;

  explicit files_server(std::vector<std::string> extra)
      : process(args(std::move(extra))), port(process.wait_listening()) {
    REQUIRE(port != 0);
  }

  static std::vector<std::string> args(std::vector<std::string> extra) {
    std::vector<std::string> argv{program(), "files", "--port", "0", "--backend", backend_name()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  command_result client(std::vector<std::string> extra, std::uint16_t to_port = 0) const {
    std::vector<std::string> argv{program(), "files-client", "--port",
                                  std::to_string(to_port ? to_port : port), "--backend",
                                  backend_name(), "--timeout", "30"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run_command(argv, 40s);
  }

  bool alive() { return process.wait_exit(0ms) == std::nullopt; }

  // Stops it as a user would: SIGTERM, exit 0.
  void stop() {
    process.signal(SIGTERM);
    CHECK(process.wait_exit() == 0);
  }
};

// A blocking TCP client that knows nothing of switchboard, like the seed's.
class raw_client {
 public:
  explicit raw_client(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    const timeval patience{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience);
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~raw_client() { ::close(fd_); }
  raw_client(const raw_client&) = delete;
  raw_client& operator=(const raw_client&) = delete;

  void send(std::string_view bytes) {
    REQUIRE(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size()));
  }
  void send(const std::vector<std::byte>& bytes) {
    send(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  }
  // One byte per segment, a little apart.
  void send_byte_by_byte(std::string_view bytes) {
    for (char c : bytes) {
      send(std::string_view(&c, 1));
      std::this_thread::sleep_for(3ms);
    }
  }
  // Up to `limit` bytes, until the server closes; `closed` says whether it did.
  std::string receive(std::size_t limit = std::string::npos) {
    std::string all;
    char buf[65536];
    while (all.size() < limit) {
      const ssize_t n = ::recv(fd_, buf, std::min(sizeof buf, limit - all.size()), 0);
      if (n <= 0) {
        closed = n == 0 || errno == ECONNRESET;
        break;
      }
      all.append(buf, static_cast<std::size_t>(n));
    }
    return all;
  }
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

  bool closed = false;

 private:
  int fd_;
};

// What the seed's client writes for commands 1 and 2: the command, then
// sprintf("%d") of the offset in a 10-byte buffer that held junk.
std::string seed_offset_request(char command, long long offset) {
  char field[16];
  std::memset(field, 'J', sizeof field);
  std::snprintf(field, sizeof field, "%lld", offset);  // the junk after the NUL stays
  return std::string{command, '\0'} + std::string(field, 10);
}

std::string seed_offset_field(char command, const char* printed) {
  char field[10];
  std::memset(field, 'J', sizeof field);
  std::memcpy(field, printed, std::min(std::strlen(printed) + 1, sizeof field));
  return std::string{command, '\0'} + std::string(field, sizeof field);
}

const std::string whole_file_request("0\0", 2);

// A named request's header and what follows it, to the end.
struct named_answer {
  std::optional<protocol::named_header> header;
  std::string data;
};

named_answer ask_named(std::uint16_t port, std::string_view name, std::uint64_t offset = 0) {
  raw_client raw(port);
  raw.send(protocol::encode_named_request(name, offset));
  const std::string all = raw.receive();
  named_answer answer;
  if (all.size() >= protocol::named_header_size) {
    answer.header = protocol::decode_header(
        std::as_bytes(std::span(all.data(), protocol::named_header_size)));
    answer.data = all.substr(protocol::named_header_size);
  }
  return answer;
}

// A relay between a client and a UDP server that loses and reorders.
struct lossy_relay {
  child_process process;
  std::uint16_t port;

  lossy_relay(std::uint16_t target, const char* loss, const char* reorder)
      : process({program(), "udp-relay", "--listen-port", "0", "--target",
                 "127.0.0.1:" + std::to_string(target), "--loss", loss, "--reorder", reorder,
                 "--seed", "7", "--backend", backend_name()}),
        port(process.wait_listening()) {
    REQUIRE(port != 0);
  }

  // Stops it and returns its closing line: how many datagrams it dropped.
  std::string stop() {
    process.signal(SIGTERM);
    CHECK(process.wait_exit() == 0);
    return process.wait_for_line("dropped", 1s).value_or("");
  }
};

}  // namespace

TEST_CASE("files-client downloads the whole file, then the rest of it from an offset",
          "[io][files]") {
  temp_dir dir;
  const std::string content = write_pattern(dir.file("source.bin"), 300'000);
  files_server server({"--file", dir.file("source.bin")});

  auto whole = server.client({"--output", dir.file("whole.bin")});
  CHECK(whole.status == 0);
  CHECK(whole.out.find("received 300000 bytes from offset 0") != std::string::npos);
  CHECK(read_file(dir.file("whole.bin")) == content);

  // Command 1: the part from the offset lands at that offset of the output.
  auto part = server.client({"--output", dir.file("part.bin"), "--offset", "123456"});
  CHECK(part.status == 0);
  const std::string got = read_file(dir.file("part.bin"));
  REQUIRE(got.size() == content.size());
  CHECK(got.substr(123456) == content.substr(123456));
  server.stop();
}

TEST_CASE("the seed client's exact bytes get the file, in one segment or byte by byte",
          "[io][files]") {
  temp_dir dir;
  const std::string content = write_pattern(dir.file("source_file.txt"), 100'000, 2);
  files_server server({"--file", dir.file("source_file.txt")});
  {
    raw_client raw(server.port);
    raw.send(whole_file_request);  // write(sock, "0\0", 2)
    CHECK(raw.receive() == content);
    CHECK(raw.closed);
  }
  for (char command : {'1', '2'}) {
    INFO("command " << command);
    raw_client raw(server.port);
    raw.send(seed_offset_request(command, 12345));
    CHECK(raw.receive() == content.substr(12345));
    CHECK(raw.closed);
  }
  {
    raw_client raw(server.port);
    raw.send_byte_by_byte(seed_offset_request('1', 99'000));
    CHECK(raw.receive() == content.substr(99'000));
  }
  {
    // The seed's client asks its user for the offset after sending the command.
    raw_client raw(server.port);
    const std::string request = seed_offset_request('1', 5);
    raw.send_byte_by_byte(request.substr(0, 2));
    std::this_thread::sleep_for(300ms);
    raw.send(request.substr(2));
    CHECK(raw.receive() == content.substr(5));
  }
  server.stop();
}

TEST_CASE("the wait between command and offset is idle time; a dribbled offset times out",
          "[io][files]") {
  temp_dir dir;
  const std::string content = write_pattern(dir.file("source.bin"), 10'000, 11);
  files_server server({"--file", dir.file("source.bin"), "--request-timeout", "0.5"});
  const std::string request = seed_offset_request('1', 10);
  {
    // The seed's user types the offset after the command went out, slower
    // than a request may take.
    raw_client raw(server.port);
    raw.send(request.substr(0, 2));
    std::this_thread::sleep_for(1s);
    raw.send(request.substr(2));
    CHECK(raw.receive() == content.substr(10));
  }
  {
    // Once the offset's first byte is in, the rest must follow in time.
    raw_client raw(server.port);
    raw.send(request.substr(0, 3));
    const auto start = std::chrono::steady_clock::now();
    CHECK(raw.receive().empty());
    CHECK(raw.closed);
    CHECK(std::chrono::steady_clock::now() - start < 3s);
    CHECK(server.process.wait_for_line("timed out", 2s));
  }
  REQUIRE(server.alive());
}

TEST_CASE("a 12 MiB file arrives byte-identical by the seed's protocol and by name",
          "[io][files]") {
  temp_dir dir;
  const std::string content = write_pattern(dir.file("big.bin"), 12 * 1024 * 1024 + 7, 3);
  files_server server({"--file", dir.file("big.bin"), "--root", dir.path()});
  auto seed = server.client({"--output", dir.file("seed.bin")});
  CHECK(seed.status == 0);
  CHECK(read_file(dir.file("seed.bin")) == content);
  auto named = server.client({"--output", dir.file("named.bin"), "--name", "big.bin"});
  INFO(named.err);
  CHECK(named.status == 0);
  CHECK(named.out.find("verified") != std::string::npos);
  CHECK(read_file(dir.file("named.bin")) == content);
}

TEST_CASE("64-bit offsets reach the last bytes of a sparse 5 GiB file", "[io][files]") {
  temp_dir dir;
  const std::string path = dir.file("sparse.bin");
  constexpr long long five_gib = 5LL << 30;
  {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, five_gib) == 0);
    REQUIRE(::pwrite(fd, "the end!", 8, five_gib - 8) == 8);
    ::close(fd);
  }
  files_server server({"--file", path});
  raw_client raw(server.port);
  raw.send(seed_offset_request('1', five_gib - 100));  // ten digits: no NUL
  const std::string tail = raw.receive();
  REQUIRE(tail.size() == 100);
  CHECK(tail.substr(92) == "the end!");
  CHECK(tail.substr(0, 92) == std::string(92, '\0'));
}

TEST_CASE("bad seed requests get a closed connection without data, and the server goes on",
          "[io][files]") {
  temp_dir dir;
  const std::string content = write_pattern(dir.file("source.bin"), 1000, 4);
  files_server server({"--file", dir.file("source.bin")});
  struct bad_request {
    const char* what;
    std::string bytes;
    const char* logged;
  };
  const std::vector<bad_request> cases{
      {"offset -1", seed_offset_field('1', "-1"), "negative offset"},
      {"offset abc", seed_offset_field('2', "abc"), "offset is not a number"},
      {"ten digits, past the end", seed_offset_field('1', "9999999999"),
       "offset 9999999999 is past the end"},
      {"one past the end", seed_offset_request('1', 1001), "offset 1001 is past the end"},
      {"unknown command", std::string("7\0", 2), "unknown command"},
      {"a command that is no digit", "x", "unknown command"},
  };
  for (const bad_request& bad : cases) {
    INFO(bad.what);
    raw_client raw(server.port);
    raw.send(bad.bytes);
    CHECK(raw.receive().empty());
    CHECK(raw.closed);
    CHECK(server.process.wait_for_line(bad.logged, 5s));
    REQUIRE(server.alive());
  }
  {
    // A truncated command, then the client closes.
    raw_client raw(server.port);
    raw.send("1");
    raw.shutdown_write();
    CHECK(raw.receive().empty());
    CHECK(raw.closed);
    CHECK(server.process.wait_for_line("request cut short", 5s));
  }
  {
    // An offset equal to the size is how a complete file looks: nothing to send.
    raw_client raw(server.port);
    raw.send(seed_offset_request('2', 1000));
    CHECK(raw.receive().empty());
    CHECK(raw.closed);
  }
  REQUIRE(server.alive());
  raw_client next(server.port);
  next.send(whole_file_request);
  CHECK(next.receive() == content);
  server.stop();
}

TEST_CASE("named requests never reach outside --root, through symlinks, FIFOs or odd names",
          "[io][files]") {
  temp_dir dir;
  const std::string root = dir.file("root");
  REQUIRE(::mkdir(root.c_str(), 0755) == 0);
  REQUIRE(::mkdir((root + "/sub").c_str(), 0755) == 0);
  write_file(dir.file("secret.txt"), "outside the root");
  const std::string content = write_pattern(root + "/ok.bin", 50'000, 5);
  write_file(root + "/sub/inner.bin", "beneath");
  REQUIRE(::symlink(dir.file("secret.txt").c_str(), (root + "/escape").c_str()) == 0);
  REQUIRE(::mkfifo((root + "/fifo").c_str(), 0644) == 0);
  files_server server({"--file", dir.file("secret.txt"), "--root", root});

  struct refused {
    std::string name;
    protocol::status expected;
  };
  const std::vector<refused> cases{
      {"../secret.txt", protocol::status::forbidden},
      {"../../../../../../etc/passwd", protocol::status::forbidden},
      {dir.file("secret.txt"), protocol::status::forbidden},  // an absolute path
      {"/etc/passwd", protocol::status::forbidden},
      {"escape", protocol::status::forbidden},  // a symlink that leaves the root
      {"fifo", protocol::status::forbidden},
      {"sub", protocol::status::forbidden},     // a directory
      {".", protocol::status::forbidden},
      {"missing.bin", protocol::status::not_found},
      {std::string(5000, 'a'), protocol::status::bad_request},
      {std::string("ok.bin\0../secret.txt", 20), protocol::status::bad_request},
      {"", protocol::status::bad_request},
  };
  for (const refused& r : cases) {
    INFO("name " << r.name.substr(0, 60) << " (" << r.name.size() << " bytes)");
    const auto start = std::chrono::steady_clock::now();
    const named_answer answer = ask_named(server.port, r.name);
    REQUIRE(answer.header);
    CHECK(answer.header->code == r.expected);
    CHECK(answer.data.empty());
    CHECK(std::chrono::steady_clock::now() - start < 3s);  // a FIFO never blocks the server
    REQUIRE(server.alive());
  }
  const named_answer inner = ask_named(server.port, "sub/inner.bin");
  REQUIRE(inner.header);
  CHECK(inner.header->code == protocol::status::ok);
  CHECK(inner.data == "beneath");

  // A client that asked for the FIFO and never reads does not hold up the next.
  raw_client stuck(server.port);
  stuck.send(protocol::encode_named_request("fifo", 0));
  auto served = server.client({"--output", dir.file("ok.out"), "--name", "ok.bin"});
  CHECK(served.status == 0);
  CHECK(read_file(dir.file("ok.out")) == content);

  const named_answer past = ask_named(server.port, "ok.bin", content.size() + 1);
  REQUIRE(past.header);
  CHECK(past.header->code == protocol::status::offset_past_end);
  CHECK(past.header->size == content.size());
  auto refused_client = server.client({"--output", dir.file("x.out"), "--name", "../secret.txt"});
  CHECK(refused_client.status == 1);
  CHECK(refused_client.err.find("forbidden") != std::string::npos);
  server.stop();
}

TEST_CASE("a named download cut at a random byte resumes to a verified, identical file",
          "[io][files]") {
  temp_dir dir;
  const std::string content = write_pattern(dir.file("data.bin"), 3 * 1024 * 1024 + 11, 6);
  files_server server({"--root", dir.path()});
  const std::size_t cut = random_cut(content.size());
  INFO("cut after " << cut << " bytes");
  {
    raw_client raw(server.port);
    raw.send(protocol::encode_named_request("data.bin", 0));
    const std::string partial = raw.receive(protocol::named_header_size + cut);
    REQUIRE(partial.size() == protocol::named_header_size + cut);
    write_file(dir.file("out.bin"), partial.substr(protocol::named_header_size));
  }  // the connection is cut here
  auto resumed = server.client({"--output", dir.file("out.bin"), "--name", "data.bin", "--resume"});
  INFO(resumed.err);
  CHECK(resumed.status == 0);
  CHECK(resumed.out.find("from offset " + std::to_string(cut)) != std::string::npos);
  CHECK(resumed.out.find("verified") != std::string::npos);
  CHECK(read_file(dir.file("out.bin")) == content);

  // A partial file that is not the server's prefix fails the check.
  write_file(dir.file("wrong.bin"), pattern(1000, 99));
  auto wrong = server.client({"--output", dir.file("wrong.bin"), "--name", "data.bin", "--resume"});
  CHECK(wrong.status == 1);
  CHECK(wrong.err.find("SHA-256 mismatch") != std::string::npos);
}

TEST_CASE("a seed download cut at a random byte resumes with command 2", "[io][files]") {
  temp_dir dir;
  const std::string content = write_pattern(dir.file("source_file.txt"), 2 * 1024 * 1024 + 3, 7);
  files_server server({"--file", dir.file("source_file.txt")});
  const std::size_t cut = random_cut(content.size());
  INFO("cut after " << cut << " bytes");
  {
    raw_client raw(server.port);
    raw.send(whole_file_request);
    const std::string partial = raw.receive(cut);
    REQUIRE(partial.size() == cut);
    write_file(dir.file("destination_file.txt"), partial);
  }
  auto resumed = server.client({"--output", dir.file("destination_file.txt"), "--resume"});
  CHECK(resumed.status == 0);
  CHECK(resumed.out.find("from offset " + std::to_string(cut)) != std::string::npos);
  CHECK(read_file(dir.file("destination_file.txt")) == content);
}

TEST_CASE("a UDP download through a relay that loses and reorders 10% is byte-identical",
          "[io][files][udp]") {
  temp_dir dir;
  const std::string content = write_pattern(dir.file("source.bin"), 1024 * 1024 + 5, 8);
  const std::string named = write_pattern(dir.file("named.bin"), 300'000, 9);
  files_server server({"--udp", "--file", dir.file("source.bin"), "--root", dir.path()});
  lossy_relay relay(server.port, "0.1", "0.1");

  auto whole = server.client({"--udp", "--output", dir.file("udp.bin")}, relay.port);
  INFO(whole.err);
  CHECK(whole.status == 0);
  CHECK(whole.out.find("verified") != std::string::npos);
  CHECK(read_file(dir.file("udp.bin")) == content);

  auto by_name = server.client({"--udp", "--output", dir.file("named.out"), "--name", "named.bin"},
                               relay.port);
  CHECK(by_name.status == 0);
  CHECK(read_file(dir.file("named.out")) == named);

  auto refused = server.client({"--udp", "--output", dir.file("x.out"), "--name", "../named.bin"},
                               relay.port);
  CHECK(refused.status == 1);
  CHECK(refused.err.find("forbidden") != std::string::npos);

  const std::string relay_summary = relay.stop();
  INFO(relay_summary);
  CHECK(relay_summary.find("dropped 0,") == std::string::npos);  // it really lost datagrams
  server.stop();
}

TEST_CASE("an interrupted UDP download resumes from the size of its file", "[io][files][udp]") {
  temp_dir dir;
  const std::string content = write_pattern(dir.file("source.bin"), 6 * 1024 * 1024 + 1, 10);
  files_server server({"--udp", "--file", dir.file("source.bin")});
  lossy_relay relay(server.port, "0.1", "0.1");
  const std::string out = dir.file("out.bin");
  {
    child_process first({program(), "files-client", "--udp", "--port", std::to_string(relay.port),
                         "--output", out, "--backend", backend_name()});
    const auto give_up = std::chrono::steady_clock::now() + 20s;
    while (file_size(out) < 100'000 && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(1ms);
    }
    first.signal(SIGKILL);
    CHECK(first.wait_exit() == 128 + SIGKILL);
  }
  const std::uint64_t kept = file_size(out);
  INFO("killed with " << kept << " bytes written");
  REQUIRE(kept > 0);
  REQUIRE(kept < content.size());
  CHECK(read_file(out) == content.substr(0, kept));  // chunks are written in order
  auto resumed = server.client({"--udp", "--output", out, "--resume"}, relay.port);
  INFO(resumed.err);
  CHECK(resumed.status == 0);
  CHECK(resumed.out.find("from offset " + std::to_string(kept)) != std::string::npos);
  CHECK(read_file(out) == content);
  relay.stop();
  server.stop();
}
