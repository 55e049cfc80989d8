/* Passing fds over Unix sockets (SCM_RIGHTS): the one codec shared by the shim,
 * the broker and the tests (header-only, C-compatible, no allocation).
 *
 * Sending: rp_fds_attach() puts one SCM_RIGHTS control message with the fds in
 * a control buffer the caller owns (RP_FDS_CONTROL_SPACE(n) bytes, aligned for
 * struct cmsghdr) and points the msghdr at it.
 *
 * Receiving: rp_fds_take() walks what recvmsg() returned and copies the fds of
 * every SCM_RIGHTS message out with memcpy (CMSG_DATA need not be aligned for
 * int); fds beyond `max` are closed with the caller's close function (the shim
 * passes its real close, never its own hook), so no fd that arrives is ever
 * leaked. It reports MSG_CTRUNC (the kernel dropped fds it could not install),
 * control messages of other kinds, and stops at a malformed header
 * (cmsg_len < CMSG_LEN(0), or longer than the buffer): kernels never produce
 * one, but a length underflow there would read far beyond the buffer.
 * The caller still checks MSG_TRUNC and its own framing, and closes the fds it
 * took on every path where it rejects the message. */
#ifndef REUSEPORT_FD_PASSING_H
#define REUSEPORT_FD_PASSING_H

#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

/* Control buffer bytes for `n` fds (a constant expression for a constant n). */
#define RP_FDS_CONTROL_SPACE(n) CMSG_SPACE(sizeof(int) * (n))

/* Attaches `count` fds to `msg` in `control` (`control_size` bytes, aligned for
 * struct cmsghdr). With count 0 the msghdr gets no control message. Returns 0,
 * or -1 when the buffer is too small (msg is left without control). */
static inline int rp_fds_attach(struct msghdr* msg, void* control, size_t control_size, const int* fds,
                                size_t count) {
  struct cmsghdr* c;
  msg->msg_control = NULL;
  msg->msg_controllen = 0;
  if (count == 0) return 0;
  if (control_size < RP_FDS_CONTROL_SPACE(count)) return -1;
  memset(control, 0, RP_FDS_CONTROL_SPACE(count));
  msg->msg_control = control;
  msg->msg_controllen = RP_FDS_CONTROL_SPACE(count);
  c = CMSG_FIRSTHDR(msg);
  if (c == NULL) return -1; /* cannot be: the control buffer holds one header */
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * count);
  memcpy(CMSG_DATA(c), fds, sizeof(int) * count);
  return 0;
}

/* Whether control message `c` of `msg` has a length one can trust: at least a
 * header, and inside the control buffer. */
static inline int rp_cmsg_well_formed(const struct msghdr* msg, const struct cmsghdr* c) {
  const char* end = (const char*)msg->msg_control + msg->msg_controllen;
  return c->cmsg_len >= CMSG_LEN(0) && (size_t)(end - (const char*)c) >= (size_t)c->cmsg_len;
}

/* How many fds the control message `c` of `msg` carries: 0 for any other kind
 * of message and for a malformed one. */
static inline size_t rp_cmsg_fd_count(const struct msghdr* msg, const struct cmsghdr* c) {
  if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || !rp_cmsg_well_formed(msg, c)) return 0;
  return ((size_t)c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
}

/* The i-th fd of an SCM_RIGHTS control message (i < rp_cmsg_fd_count()). */
static inline int rp_cmsg_fd(const struct cmsghdr* c, size_t i) {
  int fd;
  memcpy(&fd, (const unsigned char*)CMSG_DATA(c) + i * sizeof(int), sizeof(int));
  return fd;
}

struct rp_fds_taken {
  size_t count;        /* fds stored in out[] */
  size_t dropped;      /* fds beyond max, already closed */
  int truncated;       /* MSG_CTRUNC: the kernel dropped some (fd limit, small buffer) */
  int other_control;   /* control messages that were not SCM_RIGHTS (or malformed) */
};

/* Takes every fd `msg` carries: the first `max` into out[], the rest closed
 * with close_fn. Fills *taken. */
static inline void rp_fds_take(struct msghdr* msg, int* out, size_t max, int (*close_fn)(int),
                               struct rp_fds_taken* taken) {
  struct cmsghdr* c;
  memset(taken, 0, sizeof(*taken));
  taken->truncated = (msg->msg_flags & MSG_CTRUNC) != 0;
  if (msg->msg_control == NULL) return;
  for (c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
    size_t n;
    size_t i;
    if (!rp_cmsg_well_formed(msg, c)) {
      taken->other_control = 1;
      break; /* a header we cannot step over safely */
    }
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
      taken->other_control = 1; /* credentials and the like carry no fds */
      continue;
    }
    n = rp_cmsg_fd_count(msg, c);
    for (i = 0; i < n; ++i) {
      int fd = rp_cmsg_fd(c, i);
      if (taken->count < max) {
        out[taken->count++] = fd;
      } else {
        close_fn(fd);
        ++taken->dropped;
      }
    }
  }
}

#endif /* REUSEPORT_FD_PASSING_H */
