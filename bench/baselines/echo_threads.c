/* echo-threads: thread per connection: the main thread accepts, each
 * connection gets a detached thread that echoes with blocking I/O until EOF.
 *
 * Run: echo-threads [--host 127.0.0.1] [--port 0]
 * Try it: nc 127.0.0.1 PORT in two terminals */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "baseline.h"

#define BUF_SIZE 16384
/* The default 8 MiB stack is address space only, but 10,000 of them crowd
 * the map count; 64 KiB holds the 16 KiB buffer with room to spare. */
#define STACK_SIZE (64 * 1024)

/* Every thread blocks in accept or read; leaving from the handler is the
 * only race-free way out, and _exit is async-signal-safe. */
static void on_signal(int sig) {
  (void)sig;
  _exit(0);
}

static void *serve(void *arg) {
  int connfd = (int)(intptr_t)arg;
  char buf[BUF_SIZE];
  ssize_t n;
  while ((n = read(connfd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0 && write_all(connfd, buf, (size_t)n) != 0) break;
  }
  close(connfd);
  return NULL;
}

int main(int argc, char **argv) {
  struct rlimit lim;
  getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max; /* 10,000 connections need more than the usual 1024 */
  setrlimit(RLIMIT_NOFILE, &lim);

  int listenfd = listen_from_args(argc, argv, "threads");
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGPIPE, SIG_IGN);

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, STACK_SIZE);
  for (;;) {
    int connfd = accept(listenfd, NULL, NULL);
    if (connfd < 0) continue; /* EINTR, ECONNABORTED, EMFILE: try again */
    pthread_t thread;
    int err = pthread_create(&thread, &attr, serve, (void *)(intptr_t)connfd);
    if (err != 0) {
      fprintf(stderr, "echo-threads: pthread_create: %s\n", strerror(err));
      close(connfd);
    }
  }
}
