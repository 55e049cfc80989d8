#include "number_arg.h"

#include <errno.h>
#include <stdlib.h>

#include "member_exit.h"

unsigned long parse_number_arg(const char *option, const char *text, unsigned long max) {
  char *end = NULL;
  errno = 0;
  unsigned long value = strtoul(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || value > max) {
    die(MEMBER_EXIT_USAGE, "%s: expected a number in [0, %lu], got '%s'", option, max, text);
  }
  return value;
}
