// `switchboard backends`: which backends this kernel allows, and why not.
#pragma once

#include "common/cli.hpp"

namespace switchboard::tools {
void add_backends_command(CLI::App& app, services::command_list& commands);
}
