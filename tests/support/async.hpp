// Running coroutine test bodies on the backend under test, with a deadline.
#pragma once

#include <chrono>

#include <switchboard/runtime.hpp>
#include <switchboard/task.hpp>

#include "common/process.hpp"

namespace switchboard::testing {

void set_backend(backend_kind kind);
// The backend the I/O tests run on (select unless --backend named another).
backend_kind backend();
std::string backend_name();

// Runs `body` to completion on a fresh runtime of the backend under test;
// fails the test when it takes longer than `limit`.
void run_async(task<void> body, std::chrono::milliseconds limit = std::chrono::seconds(20));

using namespace services;  // child_process, run_command, temp_dir, ...
// The switchboard program under test.
inline std::string program() { return program_from_env("SWITCHBOARD_BIN"); }
inline std::string helper(const char* env_name) { return program_from_env(env_name); }

}  // namespace switchboard::testing
