// bench-loadgen: ping-pong load against an echo server, on raw epoll.
// Single-threaded and independent of the switchboard runtime, so that what it
// measures is the server. See bench/README.md for the output keys.
#include "loadgen_core.hpp"

#include <fmt/core.h>

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

namespace {

using loadgen::options;

std::uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

// epoll user data of the descriptors that are not connections; a connection's
// user data is its index.
constexpr std::uint64_t tag_signal = UINT64_MAX;
constexpr std::uint64_t tag_stdin = UINT64_MAX - 1;

// Connects in flight at once. Small next to the kernel's default accept
// backlog (SOMAXCONN, 4096), so a server that accepts promptly never has SYNs
// dropped, which would cost a 1 s retransmit.
constexpr std::size_t connect_batch = 128;
constexpr std::size_t io_chunk = 64 * 1024;
constexpr int max_reported_failures = 10;

enum class state : std::uint8_t { waiting, connecting, open, closed };

struct connection {
  int fd = -1;
  state st = state::waiting;
  bool idle = false;      // never sends; only watched for being closed
  bool want_out = false;  // EPOLLOUT registered because a send would block
  std::uint32_t id = 0;   // payload pattern id: index among the active ones
  std::uint64_t connect_deadline = 0;
  // The byte stream is message 0, 1, 2, ... of `size` bytes each. Messages
  // below `allowed` may be sent; allowed - recv_seq <= pipeline always.
  std::uint64_t allowed = 0;
  std::uint64_t send_seq = 0;
  std::uint32_t send_off = 0;
  std::uint64_t recv_seq = 0;
  std::uint32_t recv_off = 0;
  // Send time of message s sits at s % pipeline: that slot is reused only
  // after message s has come back.
  std::unique_ptr<std::uint64_t[]> sent_at;
};

class generator {
 public:
  explicit generator(const options& o) : opts_(o) {}

  // Sets up the address, epoll and signalfd; false after printing why not.
  bool init();
  // Opens the idle connections, then the active ones, in bounded batches.
  void connect_all();
  // --hold: reports readiness and waits for a signal or the end of stdin.
  void hold();
  // The measured ping-pong run.
  void run();

  bool interrupted() const { return stop_; }
  const loadgen::result& result() const { return result_; }
  std::uint64_t errors() const {
    return result_.connect_errors + result_.io_errors + result_.verify_errors;
  }
  void close_all();

 private:
  enum class outcome { started, failed, retry };

  outcome start_connect(std::size_t index);
  void on_connect_event(std::size_t index);
  void on_readable(std::size_t index);
  void on_message_back(std::size_t index, std::uint64_t now);
  void flush(std::size_t index);
  void set_want_out(connection& c, bool on);
  bool may_send_more() const { return opts_.round_trips == 0 || handed_out_ < opts_.round_trips; }
  void allow_one(connection& c) {
    ++c.allowed;
    ++handed_out_;
  }
  bool all_back() const { return opts_.round_trips > 0 && result_.round_trips == opts_.round_trips; }
  std::uint64_t dispatch_due(std::uint64_t now);
  int wait_until(epoll_event* events, int max, std::uint64_t until);
  bool handle_tagged(std::uint64_t tag);
  void fail(std::size_t index, std::uint64_t& counter, const std::string& why);

  const options& opts_;
  loadgen::result result_;
  sockaddr_storage addr_{};
  socklen_t addr_len_ = 0;
  bool tcp_ = true;
  int epoll_fd_ = -1;
  int signal_fd_ = -1;
  bool have_pwait2_ = true;
  bool stop_ = false;
  bool running_ = false;
  int reported_ = 0;
  std::size_t connecting_ = 0;
  std::size_t open_active_ = 0;
  std::vector<connection> conns_;
  // Run window, CLOCK_MONOTONIC ns.
  std::uint64_t t0_ = 0, t_warm_ = 0, t_end_ = 0;
  // --rate: sends are handed out from a schedule t0 + i / rate; slots_ holds
  // one entry per free pipeline slot of a connection, oldest first.
  std::deque<std::size_t> slots_;
  std::uint64_t issued_ = 0;
  // Messages allowed to be sent so far, checked against --round-trips.
  std::uint64_t handed_out_ = 0;
  std::byte in_[io_chunk];
  std::byte out_[io_chunk];
};

bool generator::init() {
  if (!opts_.unix_path.empty()) {
    tcp_ = false;
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, opts_.unix_path.data(), opts_.unix_path.size());
    std::memcpy(&addr_, &un, sizeof un);
    addr_len_ = sizeof un;
  } else {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* found = nullptr;
    const std::string port = std::to_string(opts_.port);
    if (const int rc = getaddrinfo(opts_.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
      fmt::print(stderr, "bench-loadgen: cannot resolve {}: {}\n", opts_.host, gai_strerror(rc));
      return false;
    }
    std::memcpy(&addr_, found->ai_addr, found->ai_addrlen);
    addr_len_ = found->ai_addrlen;
    freeaddrinfo(found);
  }

  // Signals arrive through a descriptor so the loop sees them between events.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);  // MSG_NOSIGNAL covers send(); this covers the rest

  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  signal_fd_ = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (epoll_fd_ < 0 || signal_fd_ < 0) {
    fmt::print(stderr, "bench-loadgen: setup failed: {}\n", std::strerror(errno));
    return false;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = tag_signal;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, signal_fd_, &ev);
  // The kernel may defer a timed wake-up by the timer slack (50 us by
  // default), which is the whole gap between sends at 20,000/s.
  prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);

  const std::size_t total = std::size_t{opts_.idle} + opts_.connections;
  conns_.resize(total);
  for (std::size_t i = 0; i < total; ++i) {
    conns_[i].idle = opts_.hold || i < opts_.idle;
    conns_[i].id = static_cast<std::uint32_t>(i < opts_.idle ? 0 : i - opts_.idle);
  }
  return true;
}

void generator::fail(std::size_t index, std::uint64_t& counter, const std::string& why) {
  connection& c = conns_[index];
  if (c.st == state::connecting) --connecting_;
  if (c.st == state::open && !c.idle) --open_active_;
  if (c.fd >= 0) close(c.fd);  // also drops it from the epoll set
  c.fd = -1;
  c.st = state::closed;
  ++counter;
  if (++reported_ <= max_reported_failures) {
    fmt::print(stderr, "bench-loadgen: {} connection {} failed: {}\n", c.idle ? "idle" : "active",
               c.idle ? index : c.id, why);
  }
}

generator::outcome generator::start_connect(std::size_t index) {
  connection& c = conns_[index];
  if (c.connect_deadline == 0) {  // first attempt; a retry keeps the deadline
    c.connect_deadline = now_ns() + static_cast<std::uint64_t>(opts_.connect_timeout * 1e9);
  }
  c.fd = socket(addr_.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c.fd < 0) {
    fail(index, result_.connect_errors, fmt::format("socket: {}", std::strerror(errno)));
    return outcome::failed;
  }
  if (tcp_) {
    // Small messages must leave at once, not wait for Nagle.
    const int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  if (connect(c.fd, reinterpret_cast<const sockaddr*>(&addr_), addr_len_) != 0 &&
      errno != EINPROGRESS) {
    const int err = errno;
    if (err == EAGAIN && !tcp_ && now_ns() < c.connect_deadline) {
      // A Unix socket says EAGAIN when the server's backlog is full: try later.
      close(c.fd);
      c.fd = -1;
      return outcome::retry;
    }
    fail(index, result_.connect_errors,
         err == EAGAIN ? std::string("connect: timed out (backlog full)")
                       : fmt::format("connect: {}", std::strerror(err)));
    return outcome::failed;
  }
  // Completion (or failure) shows as writability; a Unix connect that already
  // succeeded reports it at once too, so both take the same path.
  c.st = state::connecting;
  ++connecting_;
  epoll_event ev{};
  ev.events = EPOLLOUT;
  ev.data.u64 = index;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c.fd, &ev);
  return outcome::started;
}

void generator::on_connect_event(std::size_t index) {
  connection& c = conns_[index];
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    fail(index, result_.connect_errors, fmt::format("connect: {}", std::strerror(err)));
    return;
  }
  c.st = state::open;
  --connecting_;
  if (c.idle) {
    ++result_.idle;
  } else {
    ++result_.connections;
    ++open_active_;
    c.sent_at = std::make_unique<std::uint64_t[]>(opts_.pipeline);
  }
  // Level-triggered reads: one recv per wake-up, and the kernel reminds us of
  // what is left, so no extra recv that only returns EAGAIN.
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = index;
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
}

// Returns true when the event belonged to signalfd or stdin.
bool generator::handle_tagged(std::uint64_t tag) {
  if (tag == tag_signal) {
    signalfd_siginfo info;
    while (read(signal_fd_, &info, sizeof info) > 0) stop_ = true;
  } else if (tag == tag_stdin) {
    char buf[512];
    const ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) stop_ = true;
  } else {
    return false;
  }
  return true;
}

void generator::connect_all() {
  std::deque<std::size_t> started;  // in start order, so deadlines ascend
  std::size_t next = 0;
  epoll_event events[256];
  while (!stop_ && (next < conns_.size() || connecting_ > 0)) {
    bool retry = false;
    while (next < conns_.size() && connecting_ < connect_batch) {
      const outcome o = start_connect(next);
      if (o == outcome::retry) {
        retry = true;
        break;
      }
      if (o == outcome::started) started.push_back(next);
      ++next;
    }

    // Forget the connects that settled; fail those past their deadline.
    const std::uint64_t now = now_ns();
    while (!started.empty()) {
      const connection& c = conns_[started.front()];
      if (c.st == state::connecting && c.connect_deadline > now) break;
      if (c.st == state::connecting) {
        fail(started.front(), result_.connect_errors, "connect: timed out");
      }
      started.pop_front();
    }
    int timeout_ms = -1;
    if (retry) {
      timeout_ms = 1;
    } else if (!started.empty()) {
      const std::uint64_t left = conns_[started.front()].connect_deadline - now;
      timeout_ms = static_cast<int>((left + 999'999) / 1'000'000);
    } else if (connecting_ == 0) {
      continue;
    }

    const int n = epoll_wait(epoll_fd_, events, static_cast<int>(std::size(events)), timeout_ms);
    for (int i = 0; i < n; ++i) {
      const std::uint64_t tag = events[i].data.u64;
      if (handle_tagged(tag)) continue;
      connection& c = conns_[tag];
      if (c.st == state::connecting) {
        on_connect_event(tag);
      } else if (c.st == state::open) {
        on_readable(tag);
      }
    }
  }
}

void generator::hold() {
  fmt::print("ready connections={}\n", result_.connections + result_.idle);
  std::fflush(stdout);
  // stdin may be /dev/null or a file, which epoll refuses (EPERM); then only
  // a signal ends the hold.
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = tag_stdin;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, STDIN_FILENO, &ev);
  epoll_event events[256];
  while (!stop_) {
    const int n = epoll_wait(epoll_fd_, events, static_cast<int>(std::size(events)), -1);
    for (int i = 0; i < n; ++i) {
      const std::uint64_t tag = events[i].data.u64;
      if (!handle_tagged(tag) && conns_[tag].st == state::open) on_readable(tag);
    }
  }
}

void generator::set_want_out(connection& c, bool on) {
  if (c.want_out == on) return;
  c.want_out = on;
  epoll_event ev{};
  ev.events = EPOLLIN;
  if (on) ev.events |= EPOLLOUT;
  ev.data.u64 = static_cast<std::uint64_t>(&c - conns_.data());
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
}

// Sends as much of the allowed part of the stream as the socket takes.
void generator::flush(std::size_t index) {
  connection& c = conns_[index];
  const std::uint32_t size = opts_.size;
  while (c.st == state::open && c.send_seq < c.allowed) {
    // The pattern is generated, not stored, so a connection costs the same
    // memory whatever --size and --pipeline are.
    std::size_t len = 0;
    std::uint64_t seq = c.send_seq;
    std::uint32_t off = c.send_off;
    while (seq < c.allowed && len < io_chunk) {
      const std::size_t take = std::min<std::size_t>(size - off, io_chunk - len);
      loadgen::fill_payload(c.id, seq, off, std::span(out_ + len, take));
      len += take;
      off += static_cast<std::uint32_t>(take);
      if (off == size) {
        ++seq;
        off = 0;
      }
    }
    const std::uint64_t t = now_ns();
    const ssize_t n = send(c.fd, out_, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      fail(index, result_.io_errors, fmt::format("send: {}", std::strerror(errno)));
      return;
    }
    // Every message whose first byte left with this send starts its clock now.
    for (std::size_t left = static_cast<std::size_t>(n); left > 0;) {
      if (c.send_off == 0) c.sent_at[c.send_seq % opts_.pipeline] = t;
      const std::size_t take = std::min<std::size_t>(size - c.send_off, left);
      c.send_off += static_cast<std::uint32_t>(take);
      left -= take;
      if (c.send_off == size) {
        ++c.send_seq;
        c.send_off = 0;
      }
    }
    if (static_cast<std::size_t>(n) < len) break;  // socket buffer full
  }
  if (c.st == state::open) set_want_out(c, c.send_seq < c.allowed);
}

void generator::on_readable(std::size_t index) {
  connection& c = conns_[index];
  const ssize_t n = recv(c.fd, in_, sizeof in_, 0);
  if (n < 0) {
    if (errno != EAGAIN && errno != EINTR) {
      fail(index, result_.io_errors, fmt::format("recv: {}", std::strerror(errno)));
    }
    return;
  }
  if (n == 0) {
    fail(index, result_.io_errors, "closed by the server");
    return;
  }
  const std::uint64_t now = now_ns();  // after recv returned: the last byte is in
  const std::uint64_t size = opts_.size;
  const std::uint64_t sent = c.send_seq * size + c.send_off;
  const std::uint64_t received = c.recv_seq * size + c.recv_off;
  if (c.idle || !running_ || received + static_cast<std::uint64_t>(n) > sent) {
    fail(index, result_.verify_errors,
         fmt::format("received {} bytes more than were sent",
                     received + static_cast<std::uint64_t>(n) - sent));
    return;
  }
  std::span<const std::byte> data(in_, static_cast<std::size_t>(n));
  while (!data.empty()) {
    const std::size_t take = std::min<std::size_t>(size - c.recv_off, data.size());
    const auto bad = loadgen::count_mismatches(c.id, c.recv_seq, c.recv_off, data.first(take));
    if (bad != 0) {
      fail(index, result_.verify_errors,
           fmt::format("{} of {} bytes wrong in message {} from offset {}", bad, take,
                       c.recv_seq, c.recv_off));
      return;
    }
    c.recv_off += static_cast<std::uint32_t>(take);
    data = data.subspan(take);
    if (c.recv_off == size) on_message_back(index, now);
  }
  flush(index);
}

void generator::on_message_back(std::size_t index, std::uint64_t now) {
  connection& c = conns_[index];
  if (now >= t_warm_ && now < t_end_) {
    result_.latency.record(now - c.sent_at[c.recv_seq % opts_.pipeline]);
    ++result_.round_trips;
  }
  ++c.recv_seq;
  c.recv_off = 0;
  if (opts_.rate > 0) {
    slots_.push_back(index);  // the schedule decides when it sends again
  } else if (may_send_more()) {
    allow_one(c);
  }
}

// Hands every send that is due by now to a connection with a free slot. When
// none is free the schedule runs late, and those sends go out as slots free
// up. Returns when the next send is due, or UINT64_MAX when a returning
// message, not the clock, is what can start one.
std::uint64_t generator::dispatch_due(std::uint64_t now) {
  const double per_ns = opts_.rate / 1e9;
  const auto due = static_cast<std::uint64_t>(static_cast<double>(now - t0_) * per_ns) + 1;
  while (issued_ < due && !slots_.empty() && may_send_more()) {
    const std::size_t index = slots_.front();
    slots_.pop_front();
    if (conns_[index].st != state::open) continue;
    allow_one(conns_[index]);
    ++issued_;
    flush(index);
  }
  if (slots_.empty() || !may_send_more()) return UINT64_MAX;
  return t0_ + static_cast<std::uint64_t>(std::ceil(static_cast<double>(issued_) / per_ns));
}

// epoll_pwait2 (Linux 5.11) takes a nanosecond timeout, so the schedule
// wakes to the microsecond; older kernels get epoll_wait, whose millisecond
// steps turn the schedule into bursts of the right average rate.
int generator::wait_until(epoll_event* events, int max, std::uint64_t until) {
  const std::uint64_t now = now_ns();
  const std::uint64_t left = until > now ? until - now : 0;
  if (have_pwait2_) {
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(left / 1'000'000'000u);
    ts.tv_nsec = static_cast<long>(left % 1'000'000'000u);
    const int n = epoll_pwait2(epoll_fd_, events, max, &ts, nullptr);
    if (n >= 0 || errno != ENOSYS) return n;
    have_pwait2_ = false;
  }
  return epoll_wait(epoll_fd_, events, max, static_cast<int>((left + 999'999) / 1'000'000));
}

void generator::run() {
  running_ = true;
  t0_ = now_ns();
  t_warm_ = t0_ + static_cast<std::uint64_t>(opts_.warmup * 1e9);
  t_end_ = t_warm_ + static_cast<std::uint64_t>(opts_.seconds * 1e9);
  const bool paced = opts_.rate > 0;
  for (std::uint32_t k = 0; k < opts_.pipeline; ++k) {
    for (std::size_t i = opts_.idle; i < conns_.size(); ++i) {
      if (conns_[i].st != state::open) continue;
      if (paced) {
        slots_.push_back(i);  // round-robin, so the load spreads over all connections
      } else if (may_send_more()) {
        allow_one(conns_[i]);
      }
    }
  }
  if (!paced) {
    for (std::size_t i = opts_.idle; i < conns_.size(); ++i) flush(i);
  }

  epoll_event events[1024];
  std::uint64_t now = now_ns();
  // Ends early when a signal comes, every active connection has failed or,
  // with --round-trips, every message has come back.
  while (!stop_ && open_active_ > 0 && now < t_end_ && !all_back()) {
    const std::uint64_t next_send = paced ? dispatch_due(now) : UINT64_MAX;
    const int n =
        wait_until(events, static_cast<int>(std::size(events)), std::min(next_send, t_end_));
    for (int i = 0; i < n; ++i) {
      const std::uint64_t tag = events[i].data.u64;
      if (handle_tagged(tag)) continue;
      if (conns_[tag].st != state::open) continue;  // failed earlier in this batch
      if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(tag);
      if (events[i].events & EPOLLOUT) flush(tag);
    }
    now = now_ns();
  }
  // The rate is over the time really measured.
  const std::uint64_t end = std::min(now, t_end_);
  result_.seconds = end > t_warm_ ? static_cast<double>(end - t_warm_) / 1e9 : 0.0;
  running_ = false;
}

void generator::close_all() {
  for (connection& c : conns_) {
    if (c.fd >= 0) close(c.fd);
    c.fd = -1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string_view> args(argv + 1, argv + argc);
  const loadgen::parse_result parsed = loadgen::parse_args(args);
  if (!parsed.ok()) {
    fmt::print(stderr, "bench-loadgen: {}\ntry 'bench-loadgen --help'\n", parsed.error);
    return 2;
  }
  const options& opts = parsed.opts;
  if (opts.help) {
    fmt::print("{}", loadgen::usage());
    return 0;
  }

  // 10,000 connections need more descriptors than the usual soft limit.
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;
  setrlimit(RLIMIT_NOFILE, &lim);
  const std::uint64_t needed = std::uint64_t{opts.connections} + opts.idle + 16;
  if (lim.rlim_cur != RLIM_INFINITY && needed > lim.rlim_cur) {
    fmt::print(stderr, "bench-loadgen: {} connections need about {} descriptors, the limit is {}\n",
               std::uint64_t{opts.connections} + opts.idle, needed, lim.rlim_cur);
    return 2;
  }

  // The generator holds two 64 KiB buffers: keep it off the stack.
  auto gen = std::make_unique<generator>(opts);
  if (!gen->init()) return 2;
  gen->connect_all();
  if (opts.hold) {
    if (gen->interrupted()) {
      fmt::print(stderr, "bench-loadgen: interrupted while connecting\n");
      return 1;
    }
    gen->hold();
    gen->close_all();
    return gen->errors() == 0 ? 0 : 1;
  }
  if (!gen->interrupted()) gen->run();
  gen->close_all();
  if (gen->errors() > 0) {
    fmt::print(stderr, "bench-loadgen: {} errors, see above (at most {} reported)\n",
               gen->errors(), max_reported_failures);
  }
  fmt::print("{}\n", loadgen::format_result(opts, gen->result()));
  return gen->errors() == 0 ? 0 : 1;
}
