/* echo-select: the textbook select() echo pool (seed 001, "Echo Server:
 * Event-based"), kept as written, plus the guard the textbook lacks: an fd_set
 * holds descriptors 0..FD_SETSIZE-1 only, and FD_SET on a larger one writes
 * past the set, so such connections are refused (closed at once) and counted.
 *
 * Run: echo-select [--host 127.0.0.1] [--port 0]
 * Try it: nc 127.0.0.1 PORT; kill -USR1 PID prints the refusal count. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include "baseline.h"

#define BUF_SIZE 16384

typedef struct {
  int maxfd;         /* largest descriptor in read_set */
  int nready;        /* number of ready descriptors from select */
  fd_set read_set;   /* set of all active descriptors */
  fd_set ready_set;  /* subset of descriptors ready for reading */
} pool;

static volatile sig_atomic_t stop_requested, report_requested;
static unsigned long refused;

static void on_signal(int sig) {
  if (sig == SIGUSR1)
    report_requested = 1;
  else
    stop_requested = 1;
}

static void report(void) {
  fprintf(stderr, "refused %lu connections with fd >= FD_SETSIZE\n", refused);
  fflush(stderr);
}

/* The textbook's check_clients; the one change is that a read error closes
 * the connection like EOF does (a reset socket stays readable forever). */
static void check_clients(int listenfd, pool *p) {
  char buf[BUF_SIZE];
  for (int s = 0; s < p->maxfd + 1 && p->nready > 0; s++) {
    if (s == listenfd) continue;
    if (FD_ISSET(s, &p->read_set) && FD_ISSET(s, &p->ready_set)) {
      p->nready--;
      ssize_t n = read(s, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue; /* still readable: select says so again */
      if (n > 0 && write_all(s, buf, (size_t)n) == 0) continue;
      close(s); /* EOF, reset, or the peer stopped reading */
      FD_CLR(s, &p->read_set);
      if (s == p->maxfd) {
        p->maxfd--;
        while (!FD_ISSET(p->maxfd, &p->read_set)) p->maxfd--; /* listenfd stops it */
      }
    }
  }
}

int main(int argc, char **argv) {
  /* Take every descriptor the hard limit allows: the point of the guard is
   * to meet descriptors >= FD_SETSIZE rather than fail earlier with EMFILE. */
  struct rlimit lim;
  getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;
  setrlimit(RLIMIT_NOFILE, &lim);

  int listenfd = listen_from_args(argc, argv, "select");
  /* Non-blocking, so a client that resets between select and accept cannot
   * block the loop in accept. */
  fcntl(listenfd, F_SETFL, fcntl(listenfd, F_GETFL) | O_NONBLOCK);

  /* The signals stay blocked except inside pselect, so one that arrives
   * while we work interrupts the next wait instead of being missed. */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGUSR1, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  sigset_t blocked, waitmask;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGINT);
  sigaddset(&blocked, SIGTERM);
  sigaddset(&blocked, SIGUSR1);
  sigprocmask(SIG_BLOCK, &blocked, &waitmask);

  pool p;
  p.maxfd = listenfd;
  FD_ZERO(&p.read_set);
  FD_SET(listenfd, &p.read_set);
  while (!stop_requested) {
    if (report_requested) {
      report_requested = 0;
      report();
    }
    p.ready_set = p.read_set;
    p.nready = pselect(p.maxfd + 1, &p.ready_set, NULL, NULL, NULL, &waitmask);
    if (p.nready < 0) {
      if (errno == EINTR) continue;
      perror("select");
      return 1;
    }
    if (FD_ISSET(listenfd, &p.ready_set)) {
      int connfd = accept(listenfd, NULL, NULL);
      if (connfd >= FD_SETSIZE) {
        close(connfd); /* the guard: FD_SET(connfd) would corrupt memory */
        refused++;
      } else if (connfd >= 0) {
        FD_SET(connfd, &p.read_set);
        if (connfd > p.maxfd) p.maxfd = connfd;
      }
      p.nready--;
    }
    check_clients(listenfd, &p);
  }
  report();
  return 0;
}
