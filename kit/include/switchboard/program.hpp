// A service's coroutine main as a program: the exit-status table, the process
// set-up every server wants, and the backend the user named.
//
//   int main() { return switchboard::run_on_backend("auto", [] { return serve(); }); }
//
// Exit status: 0 success; 1 failure (or a client timeout); 2 usage error;
// 69 (EX_UNAVAILABLE) the named backend cannot be set up here; 128 + N a
// second stop signal N cut the drain short.
#pragma once

#include <functional>
#include <string>

#include "switchboard/runtime.hpp"
#include "switchboard/task.hpp"

namespace switchboard {

inline constexpr int exit_failure = 1;
inline constexpr int exit_usage = 2;
inline constexpr int exit_unavailable = 69;

// Raises the soft fd limit to the hard one and ignores SIGPIPE (every send
// also carries MSG_NOSIGNAL and send_file takes back its own: belt and braces).
void prepare_process();

// Prepares the process, sets up the backend named `backend` ("select",
// "epoll", "uring" or "io_uring", or "auto": the best this kernel allows,
// saying why when it is not uring), then runs `main` on it. Returns main's
// status; 69 when the backend is refused, with the reason on stderr; 1 when
// main throws; 2 (a usage error) for a name it does not know.
int run_on_backend(const std::string& backend, const std::function<task<int>()>& main);

// The same with the runtime set up by `options` (a trace file, its limit,
// the receive buffers); 1 when they cannot be honoured (a trace file that
// cannot be created), with the reason on stderr.
int run_on_backend(const std::string& backend, const runtime_options& options,
                   const std::function<task<int>()>& main);

}  // namespace switchboard
