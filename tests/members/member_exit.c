#include "member_exit.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reuseport/errno_name.h"

/* glibc's program_invocation_short_name is the basename of argv[0]. */
extern char *program_invocation_short_name;

void die_errno(const char *what, int err, int status) {
  fprintf(stderr, "%s: %s: %s (%s)\n", program_invocation_short_name, what,
          strerror(err), rp_errno_name(err));
  exit(status);
}

void die(int status, const char *format, ...) {
  va_list args;
  va_start(args, format);
  fprintf(stderr, "%s: ", program_invocation_short_name);
  vfprintf(stderr, format, args);
  fputc('\n', stderr);
  va_end(args);
  exit(status);
}
