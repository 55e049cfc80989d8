#include "ready_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "member_exit.h"

void write_ready_file(const char *path, unsigned port) {
  char tmp_path[4096];
  if (snprintf(tmp_path, sizeof(tmp_path), "%s.tmp", path) >= (int)sizeof(tmp_path)) {
    die(MEMBER_EXIT_OTHER, "ready file path too long: %s", path);
  }
  char text[32];
  int text_len = snprintf(text, sizeof(text), "%u\n", port);
  int fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) die_errno("open(ready file)", errno, MEMBER_EXIT_OTHER);
  if (write(fd, text, (size_t)text_len) != text_len) {
    die_errno("write(ready file)", errno, MEMBER_EXIT_OTHER);
  }
  if (close(fd) != 0) die_errno("close(ready file)", errno, MEMBER_EXIT_OTHER);
  if (rename(tmp_path, path) != 0) die_errno("rename(ready file)", errno, MEMBER_EXIT_OTHER);
}
