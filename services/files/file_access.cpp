#include "file_access.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/core.h>

namespace switchboard::services::files {
namespace {

using protocol::status;

// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer,
// and block the whole loop.
constexpr int open_flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW;

status status_for(int err) {
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return status::not_found;
    case EXDEV:   // RESOLVE_BENEATH: the path leaves the root
    case ELOOP:   // a symlink
    case EACCES:
    case EPERM:
    case ENXIO:   // a socket or a device without a driver
      return status::forbidden;
    case ENAMETOOLONG:
    case EINVAL:
      return status::bad_request;
    default:
      return status::unreadable;
  }
}

opened_file failed(status code, std::string why) {
  opened_file f;
  f.code = code;
  f.why = std::move(why);
  return f;
}

// Takes over `fd` when it is a regular file, and makes it blocking again
// (sendfile and splice then never answer EAGAIN for lack of page cache).
opened_file accept_regular(int fd) {
  opened_file f;
  f.fd = unique_fd(fd);
  if (::fstat(fd, &f.info) != 0) return failed(status::unreadable, std::strerror(errno));
  if (!S_ISREG(f.info.st_mode)) return failed(status::forbidden, "not a regular file");
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return f;
}

int openat2_beneath(int root, const std::string& name) {
  open_how how{};
  how.flags = static_cast<std::uint64_t>(open_flags);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(::syscall(SYS_openat2, root, name.c_str(), &how, sizeof how));
}

}  // namespace

opened_file open_served(const std::string& path) {
  const int fd = ::open(path.c_str(), open_flags);
  if (fd < 0) return failed(status_for(errno), std::strerror(errno));
  return accept_regular(fd);
}

opened_file open_beneath(int root, std::string_view name) {
  const std::string path(name);
  int fd = openat2_beneath(root, path);
  if (fd < 0 && errno == ENOSYS) {
    // An old kernel, or a seccomp profile that predates openat2.
    if (!protocol::is_plain_name(name)) return failed(status::forbidden, "not a plain name");
    fd = ::openat(root, path.c_str(), open_flags);
  }
  if (fd < 0) return failed(status_for(errno), std::strerror(errno));
  return accept_regular(fd);
}

}  // namespace switchboard::services::files
