#include "request_log.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "member_exit.h"

int open_request_log(const char *path) {
  if (path == NULL) return -1;
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) die_errno("open(log)", errno, MEMBER_EXIT_OTHER);
  return fd;
}

void append_request_log(int fd, const char *text, size_t text_len) {
  if (fd < 0) return;
  char line[1024];
  if (text_len > sizeof(line) - 1) text_len = sizeof(line) - 1;
  memcpy(line, text, text_len);
  line[text_len] = '\n';
  ssize_t written = write(fd, line, text_len + 1);
  if (written != (ssize_t)(text_len + 1)) {
    die_errno("write(log)", written < 0 ? errno : EIO, MEMBER_EXIT_OTHER);
  }
}
