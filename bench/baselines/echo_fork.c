/* echo-fork: the seed's process-per-connection model (seed 001, "Echo
 * Server: Process-based"): the parent accepts and forks; the child closes the
 * listener, echoes until EOF and exits; the parent closes its copy of the
 * connection (else it would never close) and reaps children on SIGCHLD.
 *
 * Run: echo-fork [--host 127.0.0.1] [--port 0]
 * Try it: nc 127.0.0.1 PORT in two terminals; ps shows a child for each */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "baseline.h"

#define BUF_SIZE 16384

/* Parent and children block in accept or read; leaving from the handler is
 * the only race-free way out, and _exit is async-signal-safe. */
static void on_signal(int sig) {
  (void)sig;
  _exit(0);
}

/* Reaps every finished child: one SIGCHLD may stand for several. */
static void on_child(int sig) {
  (void)sig;
  int saved = errno;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
  errno = saved;
}

static void serve(int connfd) {
  char buf[BUF_SIZE];
  ssize_t n;
  while ((n = read(connfd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0 && write_all(connfd, buf, (size_t)n) != 0) break;
  }
  close(connfd);
}

int main(int argc, char **argv) {
  int listenfd = listen_from_args(argc, argv, "fork");
  pid_t parent = getpid();
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_child;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP; /* accept resumes after a reap */
  sigaction(SIGCHLD, &sa, NULL);

  for (;;) {
    int connfd = accept(listenfd, NULL, NULL);
    if (connfd < 0) continue; /* EINTR, ECONNABORTED, EMFILE: try again */
    pid_t pid = fork();
    if (pid == 0) {
      close(listenfd);
      /* When the parent is stopped, its children go too, not just when
       * their clients leave; the getppid check covers a parent that died
       * before the prctl. */
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != parent) _exit(0);
      serve(connfd);
      _exit(0); /* not exit: the parent's stdio buffers are not ours to flush */
    }
    if (pid < 0) perror("fork");
    close(connfd);
  }
}
