// Running coroutine test bodies on the backend under test, with a deadline.
#pragma once

#include <chrono>

#include <switchboard/runtime.hpp>
#include <switchboard/task.hpp>

#include "process.hpp"

namespace switchboard::testing {

// Built with the sanitizers (./dev test's second build)?
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool sanitized_build = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool sanitized_build = true;
#else
inline constexpr bool sanitized_build = false;
#endif
#else
inline constexpr bool sanitized_build = false;
#endif
// Under AddressSanitizer freed memory sits in a quarantine instead of being
// reused, so a process's RSS grows with churn alone: memory-flatness checks
// only mean something in a plain build.
inline constexpr bool rss_is_meaningful = !sanitized_build;

// Waits up to `limit` for process `pid` to hold no more than `baseline`
// descriptors. "No more", not "exactly": the sanitizers' memory probes open
// a pipe for a moment, so a baseline read during one is two too high.
bool fds_back_to(pid_t pid, std::size_t baseline, std::chrono::milliseconds limit);

void set_backend(backend_kind kind);
// The backend the I/O tests run on (select unless --backend named another).
backend_kind backend();
std::string backend_name();

// Runs `body` to completion on a fresh runtime of the backend under test,
// set up with `options`; fails the test when it takes longer than `limit`,
// leaves an operation in flight, or leaves more descriptors open than before.
void run_async(task<void> body, std::chrono::milliseconds limit = std::chrono::seconds(20),
               runtime_options options = {});

using namespace tools;  // child_process, run_command, temp_dir, ...
// The switchboard program under test.
inline std::string program() { return program_from_env("SWITCHBOARD_BIN"); }
inline std::string helper(const char* env_name) { return program_from_env(env_name); }

// A blocking socket connected to 127.0.0.1:`port`, outside any runtime, as a
// client that knows nothing of switchboard; its reads give up after 10 s.
int raw_connect(std::uint16_t port);

}  // namespace switchboard::testing
