// Signals as awaitable events, through signalfd, on every backend.
//
//   signal_set signals{SIGINT, SIGTERM};
//   auto sig = co_await signals.next();   // result<int>: the signal number
//
// The signals are blocked for the whole process while the set lives, so they
// are delivered only through the loop: no handler runs between two
// instructions of a coroutine. Processes the program starts should get a
// clean mask (see spawn helpers); signalfd masks are not inherited across
// exec anyway, but blocked signals are.
#pragma once

#include <signal.h>

#include <initializer_list>

#include "switchboard/net.hpp"
#include "switchboard/result.hpp"
#include "switchboard/task.hpp"

namespace switchboard {

class signal_set {
 public:
  // Blocks `signals` and opens a signalfd for them; throws std::system_error.
  explicit signal_set(std::initializer_list<int> signals);
  // Restores the signal mask that was in place before.
  ~signal_set();
  signal_set(const signal_set&) = delete;
  signal_set& operator=(const signal_set&) = delete;

  // Waits for the next of the signals and returns its number.
  task<result<int>> next();

 private:
  sigset_t previous_mask_{};
  unique_fd fd_;
};

}  // namespace switchboard
