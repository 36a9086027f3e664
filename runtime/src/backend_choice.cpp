// Backend names, probing, and the explanations a refused backend gets.
#include <cstring>
#include <string>

#include <fmt/core.h>

#include "backend.hpp"

namespace switchboard {
namespace {

// "EPERM" for EPERM; glibc >= 2.32 knows every name.
std::string errno_name(int err) {
  const char* name = ::strerrorname_np(err);
  return name ? name : fmt::format("errno {}", err);
}

std::string likely_cause(backend_kind kind, int err) {
  if (kind != backend_kind::uring) return {};
  switch (err) {
    case EPERM:
      return "blocked by a seccomp profile (Docker's default one blocks io_uring) "
             "or by the sysctl kernel.io_uring_disabled";
    case ENOSYS:
      return "this kernel was built without io_uring";
    case ENOMEM:
      return "the locked-memory limit (ulimit -l) is too small for the ring";
    case EINVAL:
      return "this kernel rejects the ring's setup flags even without the optional ones";
    default:
      return {};
  }
}

std::string explain(backend_kind kind, std::error_code error, const std::string& call) {
  std::string text =
      fmt::format("{}: {} ({})", call, error.message(), errno_name(error.value()));
  if (std::string cause = likely_cause(kind, error.value()); !cause.empty()) {
    text += fmt::format("; likely cause: {}", cause);
  }
  return text;
}

}  // namespace

std::string_view to_string(backend_kind kind) noexcept {
  switch (kind) {
    case backend_kind::select: return "select";
    case backend_kind::epoll: return "epoll";
    case backend_kind::uring: return "uring";
  }
  return "unknown";
}

std::optional<backend_kind> parse_backend(std::string_view name) noexcept {
  if (name == "select") return backend_kind::select;
  if (name == "epoll") return backend_kind::epoll;
  if (name == "uring" || name == "io_uring") return backend_kind::uring;
  return std::nullopt;
}

backend_unavailable::backend_unavailable(backend_kind kind_, std::error_code error_,
                                         std::string call)
    : std::runtime_error(explain(kind_, error_, call)), kind(kind_), error(error_) {}

std::optional<backend_unavailable> probe_backend(backend_kind kind) {
  detail::loop_state scratch;
  try {
    switch (kind) {
      case backend_kind::select: detail::make_select_backend(scratch); break;
      case backend_kind::epoll: detail::make_epoll_backend(scratch); break;
      case backend_kind::uring: detail::make_uring_backend(scratch); break;
    }
  } catch (const backend_unavailable& refused) {
    return refused;
  }
  return std::nullopt;
}

backend_choice choose_best_backend() {
  std::optional<backend_unavailable> uring = probe_backend(backend_kind::uring);
  if (!uring) return {backend_kind::uring, std::nullopt};
  const backend_kind fallback =
      probe_backend(backend_kind::epoll) ? backend_kind::select : backend_kind::epoll;
  return {fallback, std::move(uring)};
}

}  // namespace switchboard
