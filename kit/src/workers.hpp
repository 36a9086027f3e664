// --workers N: a supervisor process that binds, then runs N worker
// processes, each a whole single-threaded runtime serving the sockets it
// inherits. See docs/deploying.md, "Workers".
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <switchboard/task.hpp>

#include "switchboard/server.hpp"

namespace switchboard::detail {

// What a worker knows of its part: its number (1 to N) and the pipe its
// statistics lines go to, for the supervisor's total.
struct worker_role {
  unsigned index = 0;
  int report_fd = -1;
};

// This process's role when a supervisor started it (SWITCHBOARD_WORKER,
// read and unset at the first call), else nothing.
const std::optional<worker_role>& this_worker();

// The workers --workers asks for: `requested`, or for 0 one per CPU this
// process may run on (sched_getaffinity).
unsigned worker_count(unsigned requested);

// Runs `sockets.size()` workers, worker k on the descriptors sockets[k]
// (the same listeners for all, or a UDP socket of its own each), restarts
// one that dies, forwards stop signals and SIGUSR1, and returns the exit
// status once every worker has exited (0 when each exited 0), or 1 when
// workers keep dying.
// First prints the "listening on" line of each of `where` (`transport`:
// "tcp" or "udp") once its signals are taken over, then "workers: N (pids
// ...)". At the first stop signal it calls `stop` (which closes the
// supervisor's copies of the sockets), then forwards the signal.
task<int> supervise(server_state& server, std::vector<std::vector<int>> sockets,
                    std::vector<endpoint> where, std::string_view transport, std::function<void()> stop);

}  // namespace switchboard::detail
