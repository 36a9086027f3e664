// deny-uring ERRNO PROGRAM [ARGS...]: runs PROGRAM under a seccomp filter that
// fails io_uring_setup with ERRNO (EPERM, ENOSYS, ENOMEM or EINVAL), the way
// Docker's default profile or a kernel without io_uring would, so that tests
// exercise the real fallback path without touching the machine's settings.
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <utility>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: deny-uring EPERM|ENOSYS|ENOMEM|EINVAL PROGRAM [ARGS...]\n");
    return 2;
  }
  int err = 0;
  for (auto [name, value] : {std::pair{"EPERM", EPERM}, std::pair{"ENOSYS", ENOSYS},
                             std::pair{"ENOMEM", ENOMEM}, std::pair{"EINVAL", EINVAL}}) {
    if (std::strcmp(argv[1], name) == 0) err = value;
  }
  if (err == 0) {
    std::fprintf(stderr, "deny-uring: unknown errno %s\n", argv[1]);
    return 2;
  }
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | static_cast<unsigned>(err)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog program{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
      prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) {
    std::perror("deny-uring: seccomp");
    return 1;
  }
  execvp(argv[2], argv + 2);
  std::perror("deny-uring: exec");
  return 127;
}
