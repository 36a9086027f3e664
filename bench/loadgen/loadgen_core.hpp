// The load generator's pure logic: options, latency histogram, payload
// pattern and the result line. No I/O here, so the unit tests can cover it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace loadgen {

// Everything the command line can set; the defaults are the documented ones.
struct options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;        // set when connecting over TCP
  std::string unix_path;         // set when connecting to a Unix socket
  std::uint32_t connections = 50;
  std::uint32_t size = 64;       // bytes per message
  double seconds = 5.0;          // measured time, after the warm-up
  std::uint32_t round_trips = 0; // send exactly this many messages, then stop; 0 = run for seconds
  std::uint32_t pipeline = 1;    // messages in flight per connection
  double rate = 0.0;             // round trips per second in total, 0 = unpaced
  std::uint32_t idle = 0;        // silent connections held for the whole run
  double warmup = 0.5;
  bool hold = false;             // open the connections and wait, no traffic
  double connect_timeout = 10.0;
  bool help = false;             // --help was given; nothing else was checked
};

// The outcome of parse_args: the options, or a one-line reason they are wrong.
struct parse_result {
  options opts;
  std::string error;  // empty on success
  bool ok() const { return error.empty(); }
};

// Parses the arguments that follow the program name.
parse_result parse_args(std::span<const std::string_view> args);

// The --help text, ending in a newline.
std::string usage();

// Log-linear histogram of non-negative integers (nanoseconds here) in fixed
// memory: values below 128 are exact, above that each bucket is at most 1/128
// of its lower bound wide, and reporting its midpoint keeps a percentile
// within 0.4% of the recorded value it stands for.
class histogram {
 public:
  static constexpr int sub_bits = 7;
  static constexpr std::size_t sub_count = std::size_t{1} << sub_bits;
  static constexpr std::size_t bucket_count = sub_count + (64 - sub_bits) * sub_count;

  histogram();

  // Counts one value.
  void record(std::uint64_t value);
  // Adds all of other's values to this histogram.
  void merge(const histogram& other);
  // Forgets every value.
  void reset();

  std::uint64_t count() const { return count_; }
  std::uint64_t min() const { return count_ ? min_ : 0; }
  std::uint64_t max() const { return max_; }
  // The arithmetic mean of the recorded values (exact), 0 when empty.
  double mean() const;
  // The value below or at which p percent (0..100) of the values lie, from the
  // midpoint of its bucket, clamped to [min, max]; 0 when empty.
  std::uint64_t percentile(double p) const;

  // The bucket that holds value.
  static std::size_t bucket_of(std::uint64_t value);
  // The smallest value that falls into bucket b.
  static std::uint64_t bucket_low(std::size_t b);
  // The largest value that falls into bucket b.
  static std::uint64_t bucket_high(std::size_t b);

 private:
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  std::uint64_t min_ = UINT64_MAX;
  std::uint64_t max_ = 0;
  double sum_ = 0;  // double: exact to well below 1 ns for any realistic run
};

// Writes bytes [offset, offset + out.size()) of message seq on connection
// conn: a pattern that differs per connection and per message.
void fill_payload(std::uint32_t conn, std::uint64_t seq, std::size_t offset,
                  std::span<std::byte> out);

// How many bytes of got differ from the pattern fill_payload would write at
// the same place (0 means intact).
std::size_t count_mismatches(std::uint32_t conn, std::uint64_t seq, std::size_t offset,
                             std::span<const std::byte> got);

// What one run measured, the input to format_result.
struct result {
  double seconds = 0;              // length of the measured window
  std::uint64_t round_trips = 0;   // completed inside the window
  std::uint64_t connect_errors = 0;
  std::uint64_t io_errors = 0;     // resets, early EOF, other read/write failures
  std::uint64_t verify_errors = 0; // connections that received a wrong byte
  std::uint32_t connections = 0;   // active connections that were established
  std::uint32_t idle = 0;          // idle connections that were established
  histogram latency;               // round-trip times in ns, inside the window
};

// The one summary line (without newline):
// rps= mbps= p50_us= p90_us= p99_us= p999_us= max_us= mean_us= round_trips=
// errors= connect_errors= io_errors= verify_errors= connections= idle= size=
// pipeline= rate= seconds=
std::string format_result(const options& opts, const result& r);

}  // namespace loadgen
