// Opening the files a server serves: regular files only, and named files
// never outside their root directory.
#pragma once

#include <sys/stat.h>

#include <string>
#include <string_view>

#include <switchboard/net.hpp>

#include "protocol.hpp"

namespace switchboard::services::files {

struct opened_file {
  unique_fd fd;                 // open for reading, blocking, close-on-exec
  struct stat info {};
  protocol::status code = protocol::status::ok;
  std::string why;              // when code is not ok: what happened, for the log
};

// Opens the file at `path` (the --file) if it is a regular file.
opened_file open_served(const std::string& path);

// Opens `name` beneath the directory `root`, never leaving it: openat2 with
// RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, or, where the
// kernel has no openat2, a plain name (protocol::is_plain_name) with
// O_NOFOLLOW. Regular files only.
opened_file open_beneath(int root, std::string_view name);

}  // namespace switchboard::services::files
