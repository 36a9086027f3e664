// `switchboard tour`, what ./dev run shows a newcomer: every service started
// on every backend on free ports, driven by its client, in one table.
#pragma once

#include "common/cli.hpp"

namespace switchboard::tools::tour {
void add_command(CLI::App& app, services::command_list& commands);
}
