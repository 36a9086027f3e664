// Sockets passed on by a service manager (systemd socket activation) or by
// a supervising switchboard process, instead of bound by the server itself.
#pragma once

#include <string>
#include <vector>

namespace switchboard::detail {

// The first descriptor a service manager passes (SD_LISTEN_FDS_START).
inline constexpr int first_listen_fd = 3;

// The descriptors passed with sd_listen_fds(3) semantics: LISTEN_FDS of
// them from fd 3 on, when LISTEN_PID names this process; none otherwise.
// Unsets LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES (so that a program the
// service starts does not take them for its own) and marks each descriptor
// close-on-exec. Reads the environment once; later calls return nothing.
std::vector<int> take_listen_fds();

// What descriptor `fd` is, for an error message: "a listening TCP socket
// (127.0.0.1:7007)", "a UDP socket (...)", "not a socket".
std::string describe_socket(int fd);

}  // namespace switchboard::detail
