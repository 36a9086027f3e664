/* echo-iterative: the seed's iterative model (seed 001, "Iterative Model"):
 * accept one connection, echo it until EOF, close, accept the next. Every
 * other client waits in the backlog meanwhile; that is what it shows.
 * The textbook's printf per read is left out: it would be what we measure.
 *
 * Run: echo-iterative [--host 127.0.0.1] [--port 0]
 * Try it: nc 127.0.0.1 PORT (a second nc waits until the first quits) */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "baseline.h"

#define BUF_SIZE 16384

/* The loop blocks in accept or read; leaving from the handler is the only
 * race-free way out, and _exit is async-signal-safe. */
static void on_signal(int sig) {
  (void)sig;
  _exit(0);
}

int main(int argc, char **argv) {
  int listenfd = listen_from_args(argc, argv, "iterative");
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGPIPE, SIG_IGN);

  char buf[BUF_SIZE];
  for (;;) {
    int connfd = accept(listenfd, NULL, NULL);
    if (connfd < 0) continue; /* ECONNABORTED and the like: the next one */
    ssize_t n;
    while ((n = read(connfd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
      if (n > 0 && write_all(connfd, buf, (size_t)n) != 0) break;
    }
    close(connfd);
  }
}
