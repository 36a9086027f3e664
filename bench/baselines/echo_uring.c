/* echo-uring: the floor for a completion backend, on liburing 2.3. Accept,
 * recv and send are SQEs; each loop iteration makes one
 * io_uring_submit_and_wait call, which both submits what the last batch of
 * completions queued and waits for the next. Accept is multishot where the
 * kernel has it (5.19), single-shot otherwise. Every connection owns a
 * 16 KiB buffer, because a recv in flight needs somewhere to land.
 *
 * Run: echo-uring [--host 127.0.0.1] [--port 0]   (exit 69: io_uring unusable)
 * Try it: nc 127.0.0.1 PORT */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "baseline.h"

#define BUF_SIZE 16384
#define RING_ENTRIES 4096

/* The operation sits in the low bits of user_data; malloc'ed connections
 * are at least 8-byte aligned, so their address fills the rest. */
enum op { OP_ACCEPT = 1, OP_RECV = 2, OP_SEND = 3, OP_SIGNAL = 4 };

struct conn {
  int fd;
  unsigned len, off; /* bytes in buf, and how many of them are sent */
  char buf[BUF_SIZE];
};

static struct io_uring ring;
static int listenfd;
static int multishot = 1;

static struct io_uring_sqe *get_sqe(void) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
  if (!sqe) {
    /* Submission queue full: hand the batch over, which frees the slots. */
    io_uring_submit(&ring);
    sqe = io_uring_get_sqe(&ring);
  }
  if (!sqe) {
    fprintf(stderr, "echo-uring: no free submission queue entry\n");
    exit(1);
  }
  return sqe;
}

static void set_op(struct io_uring_sqe *sqe, struct conn *c, enum op op) {
  io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | (uint64_t)op);
}

static void arm_accept(void) {
  struct io_uring_sqe *sqe = get_sqe();
  if (multishot)
    io_uring_prep_multishot_accept(sqe, listenfd, NULL, NULL, SOCK_CLOEXEC);
  else
    io_uring_prep_accept(sqe, listenfd, NULL, NULL, SOCK_CLOEXEC);
  set_op(sqe, NULL, OP_ACCEPT);
}

static void arm_recv(struct conn *c) {
  struct io_uring_sqe *sqe = get_sqe();
  io_uring_prep_recv(sqe, c->fd, c->buf, sizeof c->buf, 0);
  set_op(sqe, c, OP_RECV);
}

static void arm_send(struct conn *c) {
  struct io_uring_sqe *sqe = get_sqe();
  io_uring_prep_send(sqe, c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
  set_op(sqe, c, OP_SEND);
}

static void drop(struct conn *c) {
  close(c->fd); /* nothing of it is in flight: recv and send alternate */
  free(c);
}

static void on_accept(int res, unsigned flags) {
  if (res >= 0) {
    struct conn *c = malloc(sizeof *c);
    if (!c) {
      close(res);
    } else {
      c->fd = res;
      arm_recv(c);
    }
  } else if (res == -EINVAL && multishot) {
    /* Kernels before 5.19 reject the multishot flag. */
    fprintf(stderr, "echo-uring: no multishot accept, using single-shot\n");
    multishot = 0;
  } else if (res == -EINVAL) {
    fprintf(stderr, "echo-uring: accept: %s\n", strerror(-res));
    exit(1);
  }
  /* Without F_MORE this SQE is done: single-shot, or a multishot that ended
   * (after an error such as EMFILE). */
  if (!(flags & IORING_CQE_F_MORE)) arm_accept();
}

int main(int argc, char **argv) {
  struct rlimit lim;
  getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max; /* 10,000 connections need more than the usual 1024 */
  setrlimit(RLIMIT_NOFILE, &lim);

  /* SINGLE_ISSUER (6.0) and DEFER_TASKRUN (6.1) let completions be processed
   * only when we wait, with no interrupting task work; older kernels say
   * EINVAL, and the ring works without them. */
  struct io_uring_params params;
  memset(&params, 0, sizeof params);
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  int ret = io_uring_queue_init_params(RING_ENTRIES, &ring, &params);
  if (ret == -EINVAL) {
    memset(&params, 0, sizeof params);
    ret = io_uring_queue_init_params(RING_ENTRIES, &ring, &params);
  }
  if (ret < 0) {
    /* ENOSYS: kernel without io_uring; EPERM: disabled by sysctl or seccomp. */
    fprintf(stderr, "echo-uring: io_uring_queue_init: %s (errno %d)\n", strerror(-ret), -ret);
    return 69; /* EX_UNAVAILABLE */
  }

  listenfd = listen_from_args(argc, argv, "uring");
  signal(SIGPIPE, SIG_IGN);
  /* SIGINT and SIGTERM are read from a signalfd like any other completion,
   * so the loop needs no second way to wake up. */
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
  struct signalfd_siginfo siginfo;
  struct io_uring_sqe *sqe = get_sqe();
  io_uring_prep_read(sqe, sigfd, &siginfo, sizeof siginfo, 0);
  set_op(sqe, NULL, OP_SIGNAL);
  arm_accept();

  for (;;) {
    ret = io_uring_submit_and_wait(&ring, 1);
    if (ret < 0 && ret != -EINTR) {
      fprintf(stderr, "echo-uring: io_uring_submit_and_wait: %s\n", strerror(-ret));
      return 1;
    }
    unsigned head, seen = 0;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(&ring, head, cqe) {
      seen++;
      uint64_t data = io_uring_cqe_get_data64(cqe);
      struct conn *c = (struct conn *)(uintptr_t)(data & ~(uint64_t)7);
      int res = cqe->res;
      switch ((enum op)(data & 7)) {
      case OP_ACCEPT:
        on_accept(res, cqe->flags);
        break;
      case OP_RECV:
        if (res <= 0) { /* EOF or reset */
          drop(c);
        } else {
          c->len = (unsigned)res;
          c->off = 0;
          arm_send(c);
        }
        break;
      case OP_SEND:
        if (res < 0) {
          drop(c);
        } else {
          c->off += (unsigned)res;
          if (c->off < c->len)
            arm_send(c); /* short send: the rest, before reading more */
          else
            arm_recv(c);
        }
        break;
      case OP_SIGNAL:
        io_uring_queue_exit(&ring);
        return 0;
      }
    }
    io_uring_cq_advance(&ring, seen);
  }
}
