#include "switchboard/program.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <exception>
#include <optional>

#include <switchboard/runtime.hpp>

#include "switchboard/log.hpp"
#include "switchboard/server.hpp"
#include "workers.hpp"

namespace switchboard {

void prepare_process() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
  std::signal(SIGPIPE, SIG_IGN);
}

int run_on_backend(const std::string& backend, const std::function<task<int>()>& main) {
  return run_on_backend(backend, runtime_options{}, main);
}

namespace {
// With --workers, each worker writes a trace of its own beside the
// supervisor's FILE: FILE's name with ".worker-K-PID" before its extension
// (the pid tells a restarted worker's file from its predecessor's).
std::string trace_of_this_process(const std::string& trace) {
  const auto& worker = detail::this_worker();
  if (trace.empty() || !worker) return trace;
  const auto slash = trace.rfind('/');
  const auto dot = trace.rfind('.');
  const bool extension = dot != std::string::npos && (slash == std::string::npos || dot > slash + 1);
  const std::size_t stem = extension ? dot : trace.size();
  return fmt::format("{}.worker-{}-{}{}", trace.substr(0, stem), worker->index, ::getpid(), trace.substr(stem));
}
}  // namespace

int run_on_backend(const server_options& options, const std::function<task<int>()>& main) {
  return run_on_backend(options.backend,
                        runtime_options{.trace = trace_of_this_process(options.trace), .trace_limit = options.trace_limit},
                        main);
}

int run_on_backend(const std::string& backend, const runtime_options& options,
                   const std::function<task<int>()>& main) {
  prepare_process();
  backend_kind kind = backend_kind::select;
  if (backend == "auto") {
    backend_choice choice = choose_best_backend();
    kind = choice.kind;
    if (choice.passed_over) {
      log("backend auto: uring unavailable ({}); using {}", choice.passed_over->what(),
          to_string(kind));
    } else {
      log("backend auto: using {}", to_string(kind));
    }
  } else if (auto named = parse_backend(backend)) {
    kind = *named;
  } else {
    log("error: unknown backend '{}': expected select, epoll, uring (or io_uring), or auto", backend);
    return exit_usage;
  }
  std::optional<runtime> rt;
  try {
    rt.emplace(kind, options);
  } catch (const backend_unavailable& refused) {
    log("error: backend {} unavailable: {}; use --backend epoll, or --backend auto to fall back",
        to_string(kind), refused.what());
    return exit_unavailable;
  } catch (const std::exception& e) {  // a trace file that cannot be created, an option out of range
    log("error: {}", e.what());
    return exit_failure;
  }
  try {
    return rt->run(main());
  } catch (const std::exception& e) {
    log("error: {}", e.what());
    return exit_failure;
  }
}

}  // namespace switchboard
