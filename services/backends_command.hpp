// `switchboard backends`: which backends this kernel allows, and why not.
#pragma once

#include "common/cli.hpp"

namespace switchboard::services {
void add_backends_command(CLI::App& app, command_list& commands);
}
