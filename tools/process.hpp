// Child processes for the tour, the benchmark and the tests: servers and
// load-generating clients run apart, so that a server's own descriptors and
// CPU are what gets measured. Output goes to files (a pipe left unread would block a
// server that logs); every child gets a clean signal mask and is killed by
// PID when its owner goes.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchboard::tools {

using namespace std::chrono_literals;

// The program named by environment variable `env_name` (meson sets them for tests).
std::string program_from_env(const char* env_name);
// This program itself.
std::string this_program();

// A fresh directory under $TMPDIR, removed with everything in it.
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

class child_process {
 public:
  explicit child_process(std::vector<std::string> argv, std::string_view stdin_text = {});
  // Standard input is a duplicate of `stdin_fd` (a pipe, a FIFO, /dev/null),
  // which the caller still owns.
  child_process(std::vector<std::string> argv, int stdin_fd);
  ~child_process();
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int sig) const;

  // The first stderr line containing `needle`, waiting up to `limit`.
  std::optional<std::string> wait_for_line(std::string_view needle,
                                           std::chrono::milliseconds limit = 10s);
  // The port of the first "listening on HOST:PORT" line; 0 when none came.
  std::uint16_t wait_listening(std::chrono::milliseconds limit = 10s);
  // The exit status (128 + N when killed by signal N), or nothing before `limit`.
  std::optional<int> wait_exit(std::chrono::milliseconds limit = 10s);

  std::string out() const;
  std::string err() const;

 private:
  temp_dir files_;
  pid_t pid_ = -1;
  std::optional<int> status_;

  child_process(std::vector<std::string> argv, std::string_view stdin_text, int stdin_fd);
};

struct command_result {
  int status = -1;  // -1: still running at the deadline (then killed)
  std::string out;
  std::string err;
};

// Runs a command to completion, for at most `limit`.
command_result run_command(std::vector<std::string> argv, std::chrono::milliseconds limit = 30s,
                           std::string_view stdin_text = {});

// The number of open descriptors of process `pid`.
std::size_t open_fds(pid_t pid);
// Resident memory of `pid` in KiB.
std::size_t rss_kib(pid_t pid);

}  // namespace switchboard::tools
