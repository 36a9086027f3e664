#include "switchboard/signal.hpp"

#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace switchboard {

signal_set::signal_set(std::initializer_list<int> signals) {
  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : signals) sigaddset(&mask, sig);
  // Blocked first, so that a signal arriving before the fd exists is kept pending.
  if (::sigprocmask(SIG_BLOCK, &mask, &previous_mask_) != 0) {
    throw std::system_error(errno, std::generic_category(), "sigprocmask");
  }
  fd_ = unique_fd(::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!fd_) {
    const int err = errno;
    ::sigprocmask(SIG_SETMASK, &previous_mask_, nullptr);
    throw std::system_error(err, std::generic_category(), "signalfd");
  }
}

signal_set::~signal_set() {
  fd_.reset();
  ::sigprocmask(SIG_SETMASK, &previous_mask_, nullptr);
}

task<result<int>> signal_set::next() {
  for (;;) {
    signalfd_siginfo info{};
    const ssize_t n = ::read(fd_.get(), &info, sizeof info);
    if (n == static_cast<ssize_t>(sizeof info)) co_return static_cast<int>(info.ssi_signo);
    if (n < 0 && errno != EAGAIN && errno != EINTR) co_return errno_code(errno);
    // signalfd is not a socket: wait for readiness, then read().
    if (auto polled = co_await wait_ready(fd_.get(), POLLIN); !polled) co_return polled.error();
  }
}

}  // namespace switchboard
