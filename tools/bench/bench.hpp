// `switchboard bench`: switchboard's echo on each backend beside the
// hand-written loops of bench/, each server pinned to one CPU and driven by
// bench-loadgen on the others, in alternating rounds; one table. See
// docs/benchmarks.md.
#pragma once

#include "common/cli.hpp"

namespace switchboard::tools::bench {
void add_command(CLI::App& app, services::command_list& commands);
}
