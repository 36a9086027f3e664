// `switchboard trace-view FILE -o OUT.svg|OUT.html`: draws a trace file as a
// picture that opens offline in any browser (docs/tracing.md, "Viewing a trace").
#pragma once

#include "common/cli.hpp"

namespace switchboard::tools {
void add_trace_view_command(CLI::App& app, services::command_list& commands);
}
