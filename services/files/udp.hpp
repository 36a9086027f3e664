// The client side of the files service's UDP protocol (files.hpp describes it).
#pragma once

#include <cstdint>
#include <optional>

#include <switchboard/task.hpp>

#include "files.hpp"

namespace switchboard::services::files {

// What a finished UDP download says the file is.
struct udp_download_result {
  std::uint64_t received = 0;  // payload bytes written
  std::uint64_t size = 0;      // the server's file size
  digest sha256{};             // and its SHA-256, for the caller to check
};

// Downloads options.name (or the server's --file) over UDP into the file
// `out`, from byte `start` on, writing chunks in order so that the file is a
// prefix of the download at every moment. Logs why on failure.
task<std::optional<udp_download_result>> udp_download(const client_options& options, int out,
                                                      std::uint64_t start);

}  // namespace switchboard::services::files
