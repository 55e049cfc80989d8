// Exported hooks for sending. One line each (the logic is in shim.h),
// but the data calls first pass straight to libc while the shim has no member,
// so a program that never shares a port pays one load and a branch.
#include "exported_hooks.h"
#include "member_table.h"
#include "real_calls.h"
#include "shim.h"

namespace rs = reuseport::shim;

ssize_t send(int fd, const void* buf, size_t len, int flags) {
  if (!rs::ShimEngaged()) return rs::Real().send(fd, buf, len, flags);
  return rs::Sendto(fd, buf, len, flags, nullptr, 0);
}
ssize_t sendto(int fd, const void* buf, size_t len, int flags, const struct sockaddr* to, socklen_t to_len) {
  if (!rs::ShimEngaged()) return rs::Real().sendto(fd, buf, len, flags, to, to_len);
  return rs::Sendto(fd, buf, len, flags, to, to_len);
}
ssize_t sendmsg(int fd, const struct msghdr* msg, int flags) {
  if (!rs::ShimEngaged()) return rs::Real().sendmsg(fd, msg, flags);
  return rs::Sendmsg(fd, msg, flags);
}
int sendmmsg(int fd, struct mmsghdr* msgs, unsigned int count, int flags) { return rs::Sendmmsg(fd, msgs, count, flags); }
ssize_t write(int fd, const void* buf, size_t len) {
  if (!rs::ShimEngaged()) return rs::Real().write(fd, buf, len);
  return rs::Write(fd, buf, len);
}
ssize_t writev(int fd, const struct iovec* iov, int count) {
  if (!rs::ShimEngaged()) return rs::Real().writev(fd, iov, count);
  return rs::Writev(fd, iov, count);
}
