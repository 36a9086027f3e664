#include "loadgen_core.hpp"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>

namespace loadgen {

namespace {

constexpr std::uint32_t max_connections = 1'000'000;  // far above any fd limit
constexpr std::uint32_t max_size = 64u << 20;
constexpr std::uint32_t max_pipeline = 4096;
constexpr std::uint32_t max_round_trips = 1'000'000'000;
constexpr double max_seconds = 1e6;
// sizeof(sockaddr_un::sun_path) on Linux, less the terminating NUL.
constexpr std::size_t max_unix_path = 107;

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

// Whole-string unsigned integer in [lo, hi]; from_chars already rejects signs,
// spaces and empty input, the end check rejects trailing garbage.
std::string parse_uint(std::string_view text, std::uint32_t lo, std::uint32_t hi,
                       std::uint32_t& out) {
  std::uint64_t v = 0;
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, v);
  if (ec != std::errc{} || p != end || v < lo || v > hi) {
    return "expected an integer from " + std::to_string(lo) + " to " + std::to_string(hi) +
           ", got " + quoted(text);
  }
  out = static_cast<std::uint32_t>(v);
  return {};
}

// Whole-string finite decimal from 0 (or above 0) to hi; from_chars accepts
// "inf" and "nan", the range check throws them out.
std::string parse_number(std::string_view text, bool zero_allowed, double hi, double& out) {
  double v = 0;
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, v);
  if (ec != std::errc{} || p != end || !std::isfinite(v) || v < 0 || (v == 0 && !zero_allowed) ||
      v > hi) {
    char hi_text[32];
    auto hi_end = std::to_chars(hi_text, hi_text + sizeof hi_text, hi).ptr;
    const char* range = zero_allowed ? "from 0 to " : "above 0 up to ";
    return "expected a number " + std::string(range) + std::string(hi_text, hi_end) + ", got " +
           quoted(text);
  }
  out = v;
  return {};
}

// splitmix64's finaliser: cheap, and every input bit affects every output bit,
// so neighbouring connections and messages get unrelated bytes.
std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::uint64_t message_seed(std::uint32_t conn, std::uint64_t seq) { return mix(mix(conn) ^ seq); }

// Byte i of a message is byte (i mod 8) of mix(seed + i / 8).
std::byte pattern_byte(std::uint64_t word, std::size_t i) {
  return static_cast<std::byte>((word >> (8 * (i & 7))) & 0xff);
}

void put(std::string& line, std::string_view key, double value, int precision) {
  char buf[64];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::fixed, precision);
  if (ec != std::errc{}) p = buf;  // cannot happen for the magnitudes printed here
  if (!line.empty()) line += ' ';
  line.append(key).append("=").append(buf, p);
}

void put(std::string& line, std::string_view key, std::uint64_t value) {
  if (!line.empty()) line += ' ';
  line.append(key).append("=").append(std::to_string(value));
}

}  // namespace

parse_result parse_args(std::span<const std::string_view> args) {
  parse_result r;
  options& o = r.opts;
  std::vector<std::string_view> seen;

  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view name = args[i];
    std::string_view value;
    bool has_value = false;
    // Accept --name=value as well as --name value.
    if (const auto eq = name.find('='); name.starts_with("--") && eq != std::string_view::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    const auto fail = [&](std::string why) {
      r.error = std::string(name) + ": " + why;
      return r;
    };

    const bool is_flag = name == "--help" || name == "-h" || name == "--hold";
    const bool takes_value = name == "--host" || name == "--port" || name == "--unix" ||
                             name == "--connections" || name == "--size" ||
                             name == "--seconds" || name == "--pipeline" || name == "--rate" ||
                             name == "--idle" || name == "--warmup" || name == "--connect-timeout" ||
                             name == "--round-trips";
    if (!is_flag && !takes_value) {
      r.error = "unknown option " + quoted(args[i]);
      return r;
    }
    if (is_flag && has_value) return fail("takes no value");
    if (name == "--help" || name == "-h") {
      o.help = true;  // --help wins over everything, even bad options after it
      return r;
    }
    if (std::find(seen.begin(), seen.end(), name) != seen.end()) return fail("given twice");
    seen.push_back(name);
    if (name == "--hold") {
      o.hold = true;
      continue;
    }
    if (!has_value) {
      if (i + 1 == args.size()) return fail("needs a value");
      value = args[++i];
    }

    std::string why;
    if (name == "--host") {
      if (value.empty()) why = "needs a host name or address";
      o.host = value;
    } else if (name == "--port") {
      std::uint32_t port = 0;
      why = parse_uint(value, 1, 65535, port);
      o.port = static_cast<std::uint16_t>(port);
    } else if (name == "--unix") {
      if (value.empty() || value.size() > max_unix_path) {
        why = "expected a socket path of 1 to " + std::to_string(max_unix_path) + " bytes";
      }
      o.unix_path = value;
    } else if (name == "--connections") {
      why = parse_uint(value, 1, max_connections, o.connections);
    } else if (name == "--size") {
      why = parse_uint(value, 1, max_size, o.size);
    } else if (name == "--pipeline") {
      why = parse_uint(value, 1, max_pipeline, o.pipeline);
    } else if (name == "--round-trips") {
      why = parse_uint(value, 1, max_round_trips, o.round_trips);
    } else if (name == "--idle") {
      why = parse_uint(value, 0, max_connections, o.idle);
    } else if (name == "--seconds") {
      why = parse_number(value, false, max_seconds, o.seconds);
    } else if (name == "--warmup") {
      why = parse_number(value, true, max_seconds, o.warmup);
    } else if (name == "--connect-timeout") {
      why = parse_number(value, false, 3600, o.connect_timeout);
    } else if (name == "--rate") {
      why = parse_number(value, true, 1e9, o.rate);
    }
    if (!why.empty()) return fail(why);
  }

  const auto given = [&](std::string_view n) {
    return std::find(seen.begin(), seen.end(), n) != seen.end();
  };
  if (given("--port") == given("--unix")) {
    r.error = "give exactly one of --port and --unix";
  } else if (given("--unix") && given("--host")) {
    r.error = "--host does not apply to --unix";
  } else if (std::uint64_t{o.connections} + o.idle > max_connections) {
    r.error = "--connections plus --idle exceeds " + std::to_string(max_connections);
  } else if (given("--round-trips") && o.hold) {
    r.error = "--round-trips does not apply to --hold";
  } else if (given("--round-trips") && given("--warmup") && o.warmup > 0) {
    // Every message counts, so that the server sees exactly the given number.
    r.error = "--round-trips counts from the first message: no --warmup";
  } else if (given("--round-trips")) {
    o.warmup = 0;
  }
  return r;
}

std::string usage() {
  return "usage: bench-loadgen (--port P | --unix PATH) [options]\n"
         "Ping-pong load against an echo server; prints one line of key=value results.\n"
         "\n"
         "  --host H              server address or name (default 127.0.0.1)\n"
         "  --port P              TCP port of the server\n"
         "  --unix PATH           Unix stream socket of the server instead of TCP\n"
         "  --connections N       active connections (default 50)\n"
         "  --size M              bytes per message (default 64)\n"
         "  --seconds S           measured duration after the warm-up (default 5)\n"
         "  --round-trips N       send exactly N messages in total, end when all are back;\n"
         "                        --seconds is then a time limit, and there is no warm-up\n"
         "  --pipeline K          messages in flight per connection (default 1)\n"
         "  --rate R              total round trips per second, paced (default 0 = unpaced)\n"
         "  --idle N              extra silent connections, opened first (default 0)\n"
         "  --warmup S            seconds run but not counted (default 0.5)\n"
         "  --connect-timeout S   per-connection connect deadline (default 10)\n"
         "  --hold                open the connections, print 'ready connections=N',\n"
         "                        hold them until SIGINT/SIGTERM or end of stdin\n"
         "  --help                this text\n"
         "\n"
         "Exit status: 0 without errors, 1 with errors, 2 for a usage error.\n";
}

histogram::histogram() : counts_(bucket_count, 0) {}

std::size_t histogram::bucket_of(std::uint64_t value) {
  if (value < sub_count) return static_cast<std::size_t>(value);
  // Keep the top sub_bits + 1 significant bits: the leading 1 picks the
  // octave (shift), the next sub_bits pick the linear sub-bucket.
  const int shift = std::bit_width(value) - 1 - sub_bits;
  const std::uint64_t top = value >> shift;  // in [sub_count, 2 * sub_count)
  return sub_count + static_cast<std::size_t>(shift) * sub_count +
         static_cast<std::size_t>(top - sub_count);
}

std::uint64_t histogram::bucket_low(std::size_t b) {
  if (b < sub_count) return b;
  const std::size_t k = b - sub_count;
  const std::size_t shift = k / sub_count;
  return static_cast<std::uint64_t>(sub_count + k % sub_count) << shift;
}

std::uint64_t histogram::bucket_high(std::size_t b) {
  return b + 1 >= bucket_count ? UINT64_MAX : bucket_low(b + 1) - 1;
}

void histogram::record(std::uint64_t value) {
  ++counts_[bucket_of(value)];
  ++count_;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
  sum_ += static_cast<double>(value);
}

void histogram::merge(const histogram& other) {
  for (std::size_t b = 0; b < bucket_count; ++b) counts_[b] += other.counts_[b];
  count_ += other.count_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
}

void histogram::reset() { *this = histogram(); }

double histogram::mean() const { return count_ ? sum_ / static_cast<double>(count_) : 0.0; }

std::uint64_t histogram::percentile(double p) const {
  if (count_ == 0) return 0;
  if (p <= 0) return min_;
  // The rank-th smallest value, rank = ceil(p% of count), as in "nearest rank".
  const double want = std::ceil(std::min(p, 100.0) / 100.0 * static_cast<double>(count_));
  const std::uint64_t rank = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(want));
  std::uint64_t seen = 0;
  for (std::size_t b = 0; b < bucket_count; ++b) {
    seen += counts_[b];
    if (seen >= rank) {
      const std::uint64_t low = bucket_low(b);
      const std::uint64_t mid = low + (bucket_high(b) - low) / 2;
      return std::clamp(mid, min_, max_);
    }
  }
  return max_;
}

// Both walk the message in whole 8-byte words where they can; the shifts
// below compile to single 64-bit loads and stores on little-endian machines,
// which keeps the generator from being what limits large-message runs.

void fill_payload(std::uint32_t conn, std::uint64_t seq, std::size_t offset,
                  std::span<std::byte> out) {
  const std::uint64_t seed = message_seed(conn, seq);
  std::size_t k = 0;
  for (; k < out.size() && ((offset + k) & 7) != 0; ++k) {
    out[k] = pattern_byte(mix(seed + ((offset + k) >> 3)), offset + k);
  }
  for (; k + 8 <= out.size(); k += 8) {
    const std::uint64_t word = mix(seed + ((offset + k) >> 3));
    for (std::size_t j = 0; j < 8; ++j) out[k + j] = pattern_byte(word, j);
  }
  for (; k < out.size(); ++k) {
    out[k] = pattern_byte(mix(seed + ((offset + k) >> 3)), offset + k);
  }
}

std::size_t count_mismatches(std::uint32_t conn, std::uint64_t seq, std::size_t offset,
                             std::span<const std::byte> got) {
  const std::uint64_t seed = message_seed(conn, seq);
  std::size_t bad = 0;
  std::size_t k = 0;
  for (; k < got.size() && ((offset + k) & 7) != 0; ++k) {
    bad += got[k] != pattern_byte(mix(seed + ((offset + k) >> 3)), offset + k);
  }
  for (; k + 8 <= got.size(); k += 8) {
    std::uint64_t word = 0;
    for (std::size_t j = 0; j < 8; ++j) {
      word |= std::to_integer<std::uint64_t>(got[k + j]) << (8 * j);
    }
    std::uint64_t diff = word ^ mix(seed + ((offset + k) >> 3));
    for (; diff != 0; diff >>= 8) bad += (diff & 0xff) != 0;
  }
  for (; k < got.size(); ++k) {
    bad += got[k] != pattern_byte(mix(seed + ((offset + k) >> 3)), offset + k);
  }
  return bad;
}

std::string format_result(const options& opts, const result& r) {
  const double rps = r.seconds > 0 ? static_cast<double>(r.round_trips) / r.seconds : 0.0;
  const auto us = [](std::uint64_t ns) { return static_cast<double>(ns) / 1000.0; };
  std::string line;
  put(line, "rps", rps, 1);
  // Payload megabytes (10^6 B) per second, both directions together.
  put(line, "mbps", rps * opts.size * 2.0 / 1e6, 1);
  put(line, "p50_us", us(r.latency.percentile(50)), 1);
  put(line, "p90_us", us(r.latency.percentile(90)), 1);
  put(line, "p99_us", us(r.latency.percentile(99)), 1);
  put(line, "p999_us", us(r.latency.percentile(99.9)), 1);
  put(line, "max_us", us(r.latency.max()), 1);
  put(line, "mean_us", r.latency.mean() / 1000.0, 1);
  put(line, "round_trips", r.round_trips);
  put(line, "errors", r.connect_errors + r.io_errors + r.verify_errors);
  put(line, "connect_errors", r.connect_errors);
  put(line, "io_errors", r.io_errors);
  put(line, "verify_errors", r.verify_errors);
  put(line, "connections", r.connections);
  put(line, "idle", r.idle);
  put(line, "size", opts.size);
  put(line, "pipeline", opts.pipeline);
  put(line, "rate", opts.rate, 1);
  put(line, "seconds", r.seconds, 2);
  return line;
}

}  // namespace loadgen
