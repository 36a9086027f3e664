/* What every C baseline shares and none of them measures: reading --host and
 * --port, listening, and printing the same "listening on" line as the
 * switchboard servers, so that the benchmark drives them all alike. The echo
 * loops themselves stay in their own files, without abstraction. */
#ifndef SWITCHBOARD_BASELINE_H
#define SWITCHBOARD_BASELINE_H

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Reads --host and --port, binds, listens and prints the listening line;
 * exits 2 on a usage error, 1 when the address cannot be bound. */
static inline int listen_from_args(int argc, char **argv, const char *name) {
  const char *host = "127.0.0.1";
  long port = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0) {
      printf("usage: %s [--host IPV4] [--port P]   (port 0 = any free port)\n", argv[0]);
      exit(0);
    } else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
      host = argv[++i];
    } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      const char *text = argv[++i];
      char *end;
      errno = 0;
      port = strtol(text, &end, 10);
      if (!isdigit((unsigned char)text[0]) || *end != '\0' || errno != 0 || port > 65535) {
        fprintf(stderr, "%s: --port: expected 0 to 65535, got '%s'\n", argv[0], text);
        exit(2);
      }
    } else {
      fprintf(stderr, "%s: unexpected argument '%s' (try --help)\n", argv[0], argv[i]);
      exit(2);
    }
  }
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)port);
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
    fprintf(stderr, "%s: --host: expected an IPv4 address, got '%s'\n", argv[0], host);
    exit(2);
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  /* SOMAXCONN, not the textbook's 5: a full backlog drops SYNs, and the
   * client's 1 s retransmit would be measured as server latency. */
  if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
      listen(fd, SOMAXCONN) != 0) {
    fprintf(stderr, "%s: cannot listen on %s:%ld: %s\n", argv[0], host, port, strerror(errno));
    exit(1);
  }
  socklen_t len = sizeof addr;
  getsockname(fd, (struct sockaddr *)&addr, &len);
  char text[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &addr.sin_addr, text, sizeof text);
  fprintf(stderr, "listening on %s:%u (tcp, baseline %s)\n", text, ntohs(addr.sin_port), name);
  fflush(stderr);
  return fd;
}

/* Blocking send of the whole buffer; -1 when the peer is gone. */
static inline int write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

#endif
