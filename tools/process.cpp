#include "process.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace switchboard::tools {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

int decode_status(int raw) {
  if (WIFEXITED(raw)) return WEXITSTATUS(raw);
  if (WIFSIGNALED(raw)) return 128 + WTERMSIG(raw);
  return -1;
}

}  // namespace

std::string program_from_env(const char* env_name) {
  const char* path = std::getenv(env_name);
  if (!path) throw std::runtime_error(std::string(env_name) + " is not set (run through meson test)");
  return path;
}

std::string this_program() { return std::filesystem::read_symlink("/proc/self/exe").string(); }

temp_dir::temp_dir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "switchboard-test-XXXXXX").string();
  if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

temp_dir::~temp_dir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

child_process::child_process(std::vector<std::string> argv, std::string_view stdin_text)
    : child_process(std::move(argv), stdin_text, -1) {}

child_process::child_process(std::vector<std::string> argv, int stdin_fd)
    : child_process(std::move(argv), {}, stdin_fd) {}

child_process::child_process(std::vector<std::string> argv, std::string_view stdin_text,
                             int stdin_fd) {
  const std::string in_path = files_.file("stdin");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (stdin_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, stdin_fd, 0);
  } else {
    std::ofstream(in_path, std::ios::binary) << stdin_text;
    posix_spawn_file_actions_addopen(&actions, 0, in_path.c_str(), O_RDONLY, 0);
  }
  posix_spawn_file_actions_addopen(&actions, 1, files_.file("stdout").c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, files_.file("stderr").c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  // A clean signal mask and default dispositions, whatever the test runner had.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigset_t all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<char*> args;
  for (std::string& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  const int rc = ::posix_spawnp(&pid_, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) throw std::runtime_error("posix_spawn " + argv[0] + ": " + std::strerror(rc));
}

child_process::~child_process() {
  if (!status_) {
    ::kill(pid_, SIGKILL);
    int raw = 0;
    ::waitpid(pid_, &raw, 0);
  }
}

void child_process::signal(int sig) const {
  if (!status_) ::kill(pid_, sig);
}

std::optional<std::string> child_process::wait_for_line(std::string_view needle,
                                                        std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    std::istringstream lines(err());
    for (std::string line; std::getline(lines, line);) {
      if (line.find(needle) != std::string::npos) return line;
    }
    if (std::chrono::steady_clock::now() > deadline || wait_exit(0ms)) return std::nullopt;
    std::this_thread::sleep_for(5ms);
  }
}

std::uint16_t child_process::wait_listening(std::chrono::milliseconds limit) {
  auto line = wait_for_line("listening on ", limit);
  if (!line) return 0;
  const auto colon = line->find(':', line->find("listening on "));
  const auto bracket = line->find("]:");
  const auto at = bracket != std::string::npos ? bracket + 2 : colon + 1;
  return static_cast<std::uint16_t>(std::stoul(line->substr(at)));
}

std::optional<int> child_process::wait_exit(std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!status_) {
    int raw = 0;
    const pid_t done = ::waitpid(pid_, &raw, WNOHANG);
    if (done == pid_) {
      status_ = decode_status(raw);
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(2ms);
  }
  return status_;
}

std::string child_process::out() const { return read_file(files_.file("stdout")); }
std::string child_process::err() const { return read_file(files_.file("stderr")); }

command_result run_command(std::vector<std::string> argv, std::chrono::milliseconds limit,
                           std::string_view stdin_text) {
  child_process child(std::move(argv), stdin_text);
  command_result result;
  if (auto status = child.wait_exit(limit)) result.status = *status;
  result.out = child.out();
  result.err = child.err();
  return result;
}

std::size_t open_fds(pid_t pid) {
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& entry :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    ++count;
  }
  return count;
}

std::size_t rss_kib(pid_t pid) {
  std::istringstream status(read_file("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6));
  }
  return 0;
}

}  // namespace switchboard::tools
