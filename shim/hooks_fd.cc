// Exported hooks for fd life: close, dup, fcntl, ioctl. One line each: the logic is in shim.h.
#include <stdarg.h>

#include "exported_hooks.h"
#include "shim.h"

namespace rs = reuseport::shim;

int close(int fd) { return rs::Close(fd); }
int dup(int fd) noexcept { return rs::Dup(fd); }
int dup2(int old_fd, int new_fd) noexcept { return rs::Dup3(old_fd, new_fd, 0, true); }
int dup3(int old_fd, int new_fd, int flags) noexcept { return rs::Dup3(old_fd, new_fd, flags, false); }
int close_range(unsigned int first, unsigned int last, int flags) noexcept { return rs::CloseRange(first, last, flags); }
void closefrom(int lowest) noexcept { rs::Closefrom(lowest); }

// The optional third argument is an int or a pointer; libc itself reads it as a
// pointer-sized value whatever cmd is.
int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return rs::Fcntl(fd, cmd, arg, false);
}
int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return rs::Fcntl(fd, cmd, arg, true);
}
int ioctl(int fd, unsigned long request, ...) noexcept {
  va_list ap;
  va_start(ap, request);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return rs::Ioctl(fd, request, arg);
}
