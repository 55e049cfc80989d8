#include "socket_checks.h"

#include <errno.h>
#include <stdio.h>

#include "member_exit.h"
#include "sockaddr_text.h"

static void expect_sockopt(int fd, int option, const char *name, int want) {
  int value = -1;
  socklen_t len = sizeof(value);
  if (getsockopt(fd, SOL_SOCKET, option, &value, &len) != 0) {
    char what[64];
    snprintf(what, sizeof(what), "getsockopt(%s)", name);
    die_errno(what, errno, MEMBER_EXIT_SOCKET_CHECK);
  }
  if (len != sizeof(value) || value != want) {
    die(MEMBER_EXIT_SOCKET_CHECK, "socket check: %s is %d (length %u), want %d", name, value,
        (unsigned)len, want);
  }
}

unsigned check_bound_socket(int fd, const struct sockaddr *requested, int type, int protocol,
                            int check_reuseport) {
  struct sockaddr_storage bound;
  socklen_t len = sizeof(bound);
  if (getsockname(fd, (struct sockaddr *)&bound, &len) != 0) {
    die_errno("getsockname", errno, MEMBER_EXIT_SOCKET_CHECK);
  }
  unsigned requested_port = sockaddr_port(requested);
  unsigned bound_port = sockaddr_port((struct sockaddr *)&bound);
  if (!same_ip(requested, (struct sockaddr *)&bound) || bound_port == 0 ||
      (requested_port != 0 && bound_port != requested_port)) {
    char want_ip[64], got_ip[64];
    format_ip(requested, want_ip, sizeof(want_ip));
    format_ip((struct sockaddr *)&bound, got_ip, sizeof(got_ip));
    die(MEMBER_EXIT_SOCKET_CHECK,
        "socket check: getsockname is %s port %u (family %d), want %s port %u (family %d)",
        got_ip, bound_port, bound.ss_family, want_ip, requested_port, requested->sa_family);
  }
  expect_sockopt(fd, SO_ACCEPTCONN, "SO_ACCEPTCONN", type == SOCK_STREAM ? 1 : 0);
  expect_sockopt(fd, SO_TYPE, "SO_TYPE", type);
  expect_sockopt(fd, SO_DOMAIN, "SO_DOMAIN", requested->sa_family);
  expect_sockopt(fd, SO_PROTOCOL, "SO_PROTOCOL", protocol);
  expect_sockopt(fd, SO_ERROR, "SO_ERROR", 0);
  if (check_reuseport) expect_sockopt(fd, SO_REUSEPORT, "SO_REUSEPORT", 1);
  return bound_port;
}
