#include "switchboard/program.hpp"

#include <sys/resource.h>

#include <csignal>
#include <exception>
#include <optional>

#include <switchboard/runtime.hpp>

#include "switchboard/log.hpp"
#include "switchboard/server.hpp"

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

int run_on_backend(const server_options& options, const std::function<task<int>()>& main) {
  return run_on_backend(options.backend, runtime_options{.trace = options.trace, .trace_limit = options.trace_limit},
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
