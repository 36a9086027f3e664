/* echo-epoll: the floor for a readiness backend. One thread, non-blocking
 * sockets, level-triggered epoll: read up to 16 KiB, write it straight back;
 * only when the socket will not take it all are the rest kept and EPOLLOUT
 * awaited (and reading paused, so a client that does not read cannot make
 * the server buffer without bound).
 *
 * Run: echo-epoll [--host 127.0.0.1] [--port 0]
 * Try it: nc 127.0.0.1 PORT */
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
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "baseline.h"

#define BUF_SIZE 16384
#define MAX_EVENTS 1024

/* Bytes read but not yet written back. Allocated only for a connection whose
 * peer is slow to read, so an idle connection costs one pointer here. */
struct pending {
  size_t len, off;
  char data[];
};

static struct pending **pending; /* indexed by fd */
static size_t pending_cap;
static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static int track(int fd) {
  if ((size_t)fd < pending_cap) return 0;
  size_t cap = pending_cap ? pending_cap : 1024;
  while (cap <= (size_t)fd) cap *= 2;
  struct pending **grown = realloc(pending, cap * sizeof *grown);
  if (!grown) return -1;
  memset(grown + pending_cap, 0, (cap - pending_cap) * sizeof *grown);
  pending = grown;
  pending_cap = cap;
  return 0;
}

static void drop(int fd) {
  free(pending[fd]);
  pending[fd] = NULL;
  close(fd); /* also removes it from the epoll set */
}

static void watch(int ep, int fd, int op, unsigned events) {
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = events;
  ev.data.fd = fd;
  epoll_ctl(ep, op, fd, &ev);
}

/* Writes what is pending; once all is out, goes back to reading. */
static void flush_pending(int ep, int fd) {
  struct pending *p = pending[fd];
  ssize_t n = send(fd, p->data + p->off, p->len - p->off, MSG_NOSIGNAL);
  if (n < 0 && errno != EAGAIN && errno != EINTR) {
    drop(fd);
    return;
  }
  if (n > 0) p->off += (size_t)n;
  if (p->off == p->len) {
    free(p);
    pending[fd] = NULL;
    watch(ep, fd, EPOLL_CTL_MOD, EPOLLIN);
  }
}

/* One read per wake-up: level-triggered epoll reports the rest next time. */
static void echo_once(int ep, int fd) {
  static char buf[BUF_SIZE];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) {
    drop(fd); /* EOF or reset */
    return;
  }
  ssize_t w = send(fd, buf, (size_t)n, MSG_NOSIGNAL);
  if (w < 0 && errno != EAGAIN && errno != EINTR) {
    drop(fd);
    return;
  }
  if (w < 0) w = 0;
  if (w == n) return;
  size_t rest = (size_t)(n - w);
  struct pending *p = malloc(sizeof *p + rest);
  if (!p) {
    drop(fd);
    return;
  }
  p->len = rest;
  p->off = 0;
  memcpy(p->data, buf + w, rest);
  pending[fd] = p;
  watch(ep, fd, EPOLL_CTL_MOD, EPOLLOUT);
}

int main(int argc, char **argv) {
  struct rlimit lim;
  getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max; /* 10,000 connections need more than the usual 1024 */
  setrlimit(RLIMIT_NOFILE, &lim);

  int listenfd = listen_from_args(argc, argv, "epoll");
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) {
    perror("epoll_create1");
    return 1;
  }
  /* A non-blocking listener, so the accept loop can stop at EAGAIN. */
  fcntl(listenfd, F_SETFL, fcntl(listenfd, F_GETFL) | O_NONBLOCK);
  watch(ep, listenfd, EPOLL_CTL_ADD, EPOLLIN);

  /* Signals stay blocked except inside epoll_pwait: none is missed between
   * the check of stop_requested and the wait. */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  sigset_t blocked, waitmask;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGINT);
  sigaddset(&blocked, SIGTERM);
  sigprocmask(SIG_BLOCK, &blocked, &waitmask);

  static struct epoll_event events[MAX_EVENTS];
  while (!stop_requested) {
    int n = epoll_pwait(ep, events, MAX_EVENTS, -1, &waitmask);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      perror("epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (fd == listenfd) {
        for (;;) {
          int connfd = accept4(listenfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (connfd < 0 && errno == ECONNABORTED) continue;
          if (connfd < 0) break; /* EAGAIN: drained; EMFILE: epoll reports it again */
          if (track(connfd) != 0) {
            close(connfd);
            continue;
          }
          watch(ep, connfd, EPOLL_CTL_ADD, EPOLLIN);
        }
      } else if (pending[fd]) {
        flush_pending(ep, fd);
      } else {
        echo_once(ep, fd);
      }
    }
  }
  return 0;
}
