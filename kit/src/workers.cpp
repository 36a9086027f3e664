#include "workers.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <iterator>
#include <sstream>

#include <switchboard/signal.hpp>
#include <switchboard/time.hpp>

#include "activation.hpp"
#include "switchboard/log.hpp"

extern char** environ;

namespace switchboard::detail {
namespace {

using namespace std::chrono_literals;

constexpr const char* worker_variable = "SWITCHBOARD_WORKER";
// Workers that die this often make the supervisor give up: a worker that
// cannot start (a bad option only it sees, a full disk) must not fork forever.
constexpr std::size_t deaths_to_give_up = 5;
constexpr auto death_window = 10s;
// How long the supervisor waits for each worker's statistics line after SIGUSR1.
constexpr auto report_patience = 1s;

std::string exit_description(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return fmt::format("was killed by signal {} ({})", WTERMSIG(status), ::strsignal(WTERMSIG(status)));
  }
  return fmt::format("ended with wait status {}", status);
}

// The program's own command line: each worker runs it again. A fresh
// program image is the only clean start for a worker: the supervisor's
// runtime (an io_uring ring whose memory fork would share, an epoll set, a
// signalfd) must not be used by two processes.
std::vector<std::string> own_command_line() {
  std::ifstream file("/proc/self/cmdline", std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  std::string::size_type begin = 0;
  while (begin < all.size()) {
    const auto end = all.find('\0', begin);
    args.push_back(all.substr(begin, end - begin));
    if (end == std::string::npos) break;
    begin = end + 1;
  }
  return args;
}

// The environment for a worker: this one without the variables of socket
// activation and of a worker role, plus those the worker needs. LISTEN_PID
// is a slot the child fills with its own pid after fork.
struct worker_environment {
  std::vector<std::string> strings;
  std::vector<char*> pointers;
  std::size_t listen_pid = 0;  // index of "LISTEN_PID=" in strings
};

bool is_ours(std::string_view entry) {
  for (std::string_view name : {"LISTEN_PID=", "LISTEN_FDS=", "LISTEN_FDNAMES=", "SWITCHBOARD_WORKER="}) {
    if (entry.substr(0, name.size()) == name) return true;
  }
  return false;
}

// Writes `value` in decimal after the '=' of `entry`; async-signal-safe (no
// allocation), for the child between fork and exec. `entry` has room for 20 digits.
void fill_number(char* entry, long value) {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value > 0);
  char* out = std::strchr(entry, '=') + 1;
  while (n > 0) *out++ = digits[--n];
  *out = '\0';
}

struct worker {
  unsigned index = 0;
  pid_t pid = -1;
  int report = -1;  // read end of its statistics pipe
  std::optional<int> status;  // once it exited during the stop
};

class supervisor {
 public:
  supervisor(server_state& server, std::vector<std::vector<int>> sockets, std::vector<endpoint> where,
             std::string_view transport, std::function<void()> stop)
      : server_(server),
        sockets_(std::move(sockets)),
        where_(std::move(where)),
        transport_(transport),
        stop_(std::move(stop)),
        argv_(own_command_line()) {
    workers_.resize(sockets_.size());
    for (std::size_t k = 0; k < workers_.size(); ++k) workers_[k].index = static_cast<unsigned>(k + 1);
  }
  ~supervisor() {
    for (worker& w : workers_) {
      if (w.report >= 0) ::close(w.report);
    }
  }

  task<int> run();

 private:
  bool start(worker& w);
  void forward(int sig) const;
  bool all_exited() const;
  task<void> report_statistics();
  // Reaps every worker that exited; false when the supervisor should give up.
  bool reap(bool stopping);

  server_state& server_;
  std::vector<std::vector<int>> sockets_;
  std::vector<endpoint> where_;
  std::string_view transport_;
  std::function<void()> stop_;
  std::vector<std::string> argv_;
  std::vector<worker> workers_;
  std::deque<clock::time_point> deaths_;
};

bool supervisor::start(worker& w) {
  if (w.report >= 0) ::close(w.report);
  w.report = -1;
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    log("{}: worker {}: pipe: {}", server_.service, w.index, std::strerror(errno));
    return false;
  }
  const std::vector<int>& fds = sockets_[w.index - 1];
  // In the worker: its sockets at 3, 4, ... and its statistics pipe right after.
  const int count = static_cast<int>(fds.size());
  const int report_target = first_listen_fd + count;

  worker_environment env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!is_ours(*e)) env.strings.emplace_back(*e);
  }
  env.listen_pid = env.strings.size();
  env.strings.push_back("LISTEN_PID=" + std::string(20, '0'));
  env.strings.push_back(fmt::format("LISTEN_FDS={}", count));
  env.strings.push_back(fmt::format("{}={}:{}", worker_variable, w.index, report_target));
  for (std::string& s : env.strings) env.pointers.push_back(s.data());
  env.pointers.push_back(nullptr);
  std::vector<std::string> args = argv_;
  std::vector<char*> arg_pointers;
  for (std::string& a : args) arg_pointers.push_back(a.data());
  arg_pointers.push_back(nullptr);

  std::vector<int> sources = fds;
  sources.push_back(pipe_fds[1]);
  const int highest = *std::max_element(sources.begin(), sources.end());
  const int scratch = std::max(report_target + 1, highest + 1);
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid < 0) {
    log("{}: worker {}: fork: {}", server_.service, w.index, std::strerror(errno));
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    return false;
  }
  if (pid == 0) {
    // Only async-signal-safe calls from here to exec. The worker ends when
    // the supervisor does (SIGTERM: it drains), also when the supervisor
    // died before the prctl took effect.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);
    // Out of the way first, then into place: a target may be a source.
    int moved[64];
    const std::size_t n = std::min<std::size_t>(sources.size(), 64);
    for (std::size_t i = 0; i < n; ++i) moved[i] = ::fcntl(sources[i], F_DUPFD, scratch);
    for (std::size_t i = 0; i < n; ++i) {
      if (moved[i] < 0 || ::dup2(moved[i], first_listen_fd + static_cast<int>(i)) < 0) ::_exit(127);
      ::close(moved[i]);
    }
    fill_number(env.pointers[env.listen_pid], ::getpid());
    // The signals the supervisor forwards stay blocked through exec, until
    // the worker's server takes them over: a SIGTERM or SIGUSR1 that comes
    // while it starts waits for it instead of killing it (their default
    // action). Everything else is unblocked.
    sigset_t forwarded;
    sigemptyset(&forwarded);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGUSR1}) sigaddset(&forwarded, sig);
    ::sigprocmask(SIG_SETMASK, &forwarded, nullptr);
    ::execve("/proc/self/exe", arg_pointers.data(), env.pointers.data());
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  w.pid = pid;
  w.report = pipe_fds[0];
  w.status.reset();
  return true;
}

void supervisor::forward(int sig) const {
  for (const worker& w : workers_) {
    if (w.pid > 0 && !w.status) ::kill(w.pid, sig);
  }
}

bool supervisor::all_exited() const {
  return std::all_of(workers_.begin(), workers_.end(), [](const worker& w) { return w.status.has_value(); });
}

bool supervisor::reap(bool stopping) {
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return true;
    auto it = std::find_if(workers_.begin(), workers_.end(), [pid](const worker& w) { return w.pid == pid; });
    if (it == workers_.end()) continue;
    worker& w = *it;
    if (stopping) {
      w.status = status;
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        notice("{}: worker {} (pid {}) {}", server_.service, w.index, pid, exit_description(status));
      }
      continue;
    }
    const auto now = clock::now();
    deaths_.push_back(now);
    while (!deaths_.empty() && now - deaths_.front() > death_window) deaths_.pop_front();
    if (deaths_.size() >= deaths_to_give_up) {
      notice("{}: worker {} (pid {}) {}; {} workers died within {} s: giving up", server_.service, w.index,
             pid, exit_description(status), deaths_.size(), death_window.count());
      w.status = status;
      return false;
    }
    const bool started = start(w);
    notice("{}: worker {} (pid {}) {}; restarted as pid {}", server_.service, w.index, pid,
           exit_description(status), started ? std::to_string(w.pid) : std::string("(failed)"));
    if (!started) {
      w.status = status;
      return false;
    }
  }
}

// Reads what is in a statistics pipe now, without waiting.
std::string read_available(int fd) {
  std::string got;
  char buf[1024];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return got;
    got.append(buf, static_cast<std::size_t>(n));
  }
}

// Adds the "name value" pairs of one worker's statistics into `total`,
// keeping the names in order; words that are not counts (the backend) are
// kept from the first worker.
void add_figures(std::vector<std::pair<std::string, std::string>>& total, const std::string& line) {
  std::istringstream words(line);
  std::string name;
  std::string value;
  while (words >> name >> value) {
    auto it = std::find_if(total.begin(), total.end(), [&](const auto& figure) { return figure.first == name; });
    if (it == total.end()) {
      total.emplace_back(name, value);
      continue;
    }
    char* end = nullptr;
    const unsigned long long a = std::strtoull(it->second.c_str(), &end, 10);
    const bool a_count = *end == '\0' && !it->second.empty();
    const unsigned long long b = std::strtoull(value.c_str(), &end, 10);
    const bool b_count = *end == '\0' && !value.empty();
    if (a_count && b_count) it->second = std::to_string(a + b);
  }
}

task<void> supervisor::report_statistics() {
  for (const worker& w : workers_) {
    if (w.report >= 0) read_available(w.report);  // a line that came too late last time
  }
  forward(SIGUSR1);
  std::vector<std::pair<std::string, std::string>> total;
  unsigned reported = 0;
  for (const worker& w : workers_) {
    if (w.report < 0 || w.status) continue;
    const auto deadline = clock::now() + report_patience;
    std::string line;
    while (line.find('\n') == std::string::npos) {
      auto ready = co_await with_deadline(deadline, wait_ready(w.report, POLLIN));
      if (!ready) break;
      const std::string more = read_available(w.report);
      if (more.empty()) break;  // the worker is gone
      line += more;
    }
    if (line.find('\n') == std::string::npos) continue;
    add_figures(total, line.substr(0, line.find('\n')));
    ++reported;
  }
  std::string figures;
  for (const auto& [name, value] : total) figures += fmt::format(" {} {}", name, value);
  notice("{}: stats (all {} workers, {} reported):{}", server_.service, workers_.size(), reported, figures);
}

// The signals the supervisor takes over: those a server takes, and SIGCHLD.
// A supervisor started to ignore SIGHUP goes on ignoring it, as a server does.
signal_set supervisor_signals() {
  struct sigaction hangup {};
  ::sigaction(SIGHUP, nullptr, &hangup);
  if (hangup.sa_handler == SIG_IGN) return signal_set{SIGINT, SIGTERM, SIGUSR1, SIGCHLD};
  return signal_set{SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGCHLD};
}

task<int> supervisor::run() {
  signal_set signals = supervisor_signals();
  for (const endpoint& e : where_) print_listening(e, transport_);
  diagnostics().limit_rate(server_.options.limit.log_rate);
  diagnostics().never_block();
  std::string pids;
  for (worker& w : workers_) {
    if (!start(w)) co_return 1;
    pids += (pids.empty() ? "" : " ") + std::to_string(w.pid);
  }
  notice("workers: {} (pids {})", workers_.size(), pids);
  bool stopping = false;
  for (;;) {
    auto sig = co_await signals.next();
    if (!sig) {
      notice("{}: waiting for signals: {}", server_.service, sig.error().message());
      forward(SIGTERM);
      co_return 1;
    }
    if (*sig == SIGCHLD) {
      if (!reap(stopping)) {
        forward(SIGTERM);  // they drain; the supervisor does not wait for them
        co_return 1;
      }
      if (stopping && all_exited()) break;
      continue;
    }
    if (*sig == SIGUSR1) {
      co_await report_statistics();
      continue;
    }
    if (stopping) {
      notice("{}: second signal ({}): exiting now", server_.service, ::strsignal(*sig));
      // Not the signal itself: one sent while a worker has not read the
      // first yet would merge with it, and the worker would go on draining.
      forward(SIGKILL);
      std::_Exit(128 + *sig);
    }
    stopping = true;
    notice("{}: {}: stopping {} workers", server_.service, ::strsignal(*sig), workers_.size());
    // The supervisor's copies close first, so that the last worker to close
    // its own is the last holder: each takes what waits, then closes.
    if (stop_) stop_();
    forward(*sig);
  }
  const bool clean = std::all_of(workers_.begin(), workers_.end(), [](const worker& w) {
    return w.status && WIFEXITED(*w.status) && WEXITSTATUS(*w.status) == 0;
  });
  co_return clean ? 0 : 1;
}

}  // namespace

const std::optional<worker_role>& this_worker() {
  static const std::optional<worker_role> role = [] () -> std::optional<worker_role> {
    const char* text = std::getenv(worker_variable);
    if (text == nullptr) return std::nullopt;
    worker_role found;
    const bool parsed = std::sscanf(text, "%u:%d", &found.index, &found.report_fd) == 2;
    ::unsetenv(worker_variable);
    if (!parsed) return std::nullopt;
    const int flags = ::fcntl(found.report_fd, F_GETFD);
    if (flags < 0) return std::nullopt;
    ::fcntl(found.report_fd, F_SETFD, flags | FD_CLOEXEC);
    ::fcntl(found.report_fd, F_SETFL, ::fcntl(found.report_fd, F_GETFL) | O_NONBLOCK);
    return found;
  }();
  return role;
}

unsigned worker_count(unsigned requested) {
  if (requested != 0) return requested;
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (::sched_getaffinity(0, sizeof allowed, &allowed) != 0) return 1;
  return static_cast<unsigned>(std::max(CPU_COUNT(&allowed), 1));
}

task<int> supervise(server_state& server, std::vector<std::vector<int>> sockets,
                    std::vector<endpoint> where, std::string_view transport, std::function<void()> stop) {
  supervisor s(server, std::move(sockets), std::move(where), transport, std::move(stop));
  co_return co_await s.run();
}

}  // namespace switchboard::detail
