#include "backends_command.hpp"

#include <fmt/core.h>
#include <switchboard/runtime.hpp>

namespace switchboard::tools {

void add_backends_command(CLI::App& app, services::command_list& commands) {
  CLI::App* cmd = app.add_subcommand("backends", "list the backends and whether they work here");
  commands.push_back({cmd, [] {
                        const backend_choice best = choose_best_backend();
                        for (backend_kind kind :
                             {backend_kind::select, backend_kind::epoll, backend_kind::uring}) {
                          auto refused = probe_backend(kind);
                          fmt::print("{:<7} {}{}\n", to_string(kind),
                                     refused ? fmt::format("unavailable: {}", refused->what())
                                             : std::string("usable"),
                                     kind == best.kind ? " (auto picks this)" : "");
                        }
                        return 0;
                      }});
}

}  // namespace switchboard::tools
