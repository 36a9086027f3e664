// Looking at processes from a test: whether one still runs, and the pids a
// line names, so that a test can check it left nothing running.
#pragma once

#include <sys/types.h>

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

namespace switchboard::testing {

// Whether process `pid` still runs (a zombie does not: it runs nothing).
inline bool running(pid_t pid) {
  FILE* stat = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
  if (stat == nullptr) return false;
  char buf[512] = {};
  const std::size_t n = std::fread(buf, 1, sizeof buf - 1, stat);
  std::fclose(stat);
  const std::string text(buf, n);
  const auto paren = text.rfind(')');
  return paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] != 'Z';
}

// The numbers after "(pids " in `line`, up to ")": "workers: 2 (pids 10 11)".
inline std::vector<pid_t> pids_in(const std::string& line) {
  std::vector<pid_t> pids;
  const auto open = line.find("(pids ");
  if (open == std::string::npos) return pids;
  std::istringstream words(line.substr(open + 6, line.find(')', open) - open - 6));
  for (pid_t pid = 0; words >> pid;) pids.push_back(pid);
  return pids;
}

}  // namespace switchboard::testing
