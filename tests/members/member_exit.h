/* Exit statuses shared by the member programs, and the one way they report a
 * fatal error. Tests match on both the status and the stderr text, so the text
 * is fixed: "<program>: <what>: <strerror> (<ERRNO_NAME>)". This header is
 * plain C so that the C++ test-support library can include it too. */
#ifndef REUSEPORT_TESTS_MEMBERS_MEMBER_EXIT_H
#define REUSEPORT_TESTS_MEMBERS_MEMBER_EXIT_H

enum member_exit_status {
  MEMBER_EXIT_OK = 0,             /* --exit-after reached, or SIGTERM/SIGINT */
  MEMBER_EXIT_USAGE = 1,          /* bad command line */
  MEMBER_EXIT_BIND = 2,           /* bind() failed */
  MEMBER_EXIT_REUSEPORT = 3,      /* setsockopt(SO_REUSEPORT) failed */
  MEMBER_EXIT_LISTEN = 4,         /* listen() failed */
  MEMBER_EXIT_ACCEPT4_FLAGS = 5,  /* accept4() returned an fd without O_NONBLOCK or FD_CLOEXEC */
  MEMBER_EXIT_SOCKET_CHECK = 6,   /* getsockname/getsockopt disagree with what was asked for */
  MEMBER_EXIT_OTHER = 7,          /* any other failure (socket(), other setsockopt, files, accept) */
};

#ifndef __cplusplus
/* Prints "<program>: <what>: <strerror(err)> (<ERRNO_NAME>)" and exits. */
_Noreturn void die_errno(const char *what, int err, int status);

/* Prints "<program>: <printf message>" and exits. */
_Noreturn void die(int status, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
#endif

#endif
