// The one Catch2 main of every test program.
//
// `--backend NAME` picks the backend the I/O tests run on. When this kernel
// refuses it the program exits 77, which meson reports as SKIP: a skipped
// backend is never a silent pass. Catch2 exits with the number of failed
// assertions, so a real 77 is turned into 1.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

#include <fmt/core.h>
#include <switchboard/runtime.hpp>

#include "support/async.hpp"

int main(int argc, char** argv) {
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--backend") == 0 && i + 1 < argc) {
      const auto kind = switchboard::parse_backend(argv[++i]);
      if (!kind) {
        fmt::print(stderr, "unknown backend {}\n", argv[i]);
        return 2;
      }
      if (auto refused = switchboard::probe_backend(*kind)) {
        fmt::print(stderr, "SKIP: {}\n", refused->what());
        return 77;
      }
      switchboard::testing::set_backend(*kind);
      continue;
    }
    args.push_back(argv[i]);
  }
  const int failed = Catch::Session().run(static_cast<int>(args.size()), args.data());
  return failed == 77 ? 1 : failed;
}
