// Exported hooks for accepting and receiving. One line each (the logic is in shim.h),
// but the data calls first pass straight to libc while the shim has no member,
// so a program that never shares a port pays one load and a branch.
#include <stdlib.h>

#include "exported_hooks.h"
#include "member_table.h"
#include "real_calls.h"
#include "shim.h"

namespace rs = reuseport::shim;

int accept(int fd, struct sockaddr* addr, socklen_t* len) { return rs::Accept4(fd, addr, len, 0); }
int accept4(int fd, struct sockaddr* addr, socklen_t* len, int flags) { return rs::Accept4(fd, addr, len, flags); }
ssize_t recv(int fd, void* buf, size_t len, int flags) {
  if (!rs::ShimEngaged()) return rs::Real().recv(fd, buf, len, flags);
  return rs::Recvfrom(fd, buf, len, flags, nullptr, nullptr);
}
ssize_t recvfrom(int fd, void* buf, size_t len, int flags, struct sockaddr* from, socklen_t* from_len) {
  if (!rs::ShimEngaged()) return rs::Real().recvfrom(fd, buf, len, flags, from, from_len);
  return rs::Recvfrom(fd, buf, len, flags, from, from_len);
}
ssize_t recvmsg(int fd, struct msghdr* msg, int flags) {
  if (!rs::ShimEngaged()) return rs::ReceiveMessage(fd, msg, flags);
  return rs::Recvmsg(fd, msg, flags);
}
int recvmmsg(int fd, struct mmsghdr* msgs, unsigned int count, int flags, struct timespec* timeout) { return rs::Recvmmsg(fd, msgs, count, flags, timeout); }
ssize_t read(int fd, void* buf, size_t len) {
  if (!rs::ShimEngaged()) return rs::Real().read(fd, buf, len);
  return rs::Read(fd, buf, len);
}
ssize_t readv(int fd, const struct iovec* iov, int count) {
  if (!rs::ShimEngaged()) return rs::Real().readv(fd, iov, count);
  return rs::Readv(fd, iov, count);
}

// _FORTIFY_SOURCE turns read/recv/recvfrom with a known buffer size into these.
// An overflowing length goes to libc's checker, which aborts as it should.
ssize_t __read_chk(int fd, void* buf, size_t len, size_t buf_len) {
  if (len > buf_len) return rs::Real().read_chk(fd, buf, len, buf_len);
  return rs::Read(fd, buf, len);
}
ssize_t __recv_chk(int fd, void* buf, size_t len, size_t buf_len, int flags) {
  if (len > buf_len) return rs::Real().recv_chk(fd, buf, len, buf_len, flags);
  return rs::Recvfrom(fd, buf, len, flags, nullptr, nullptr);
}
ssize_t __recvfrom_chk(int fd, void* buf, size_t len, size_t buf_len, int flags, struct sockaddr* from, socklen_t* from_len) {
  if (len > buf_len) return rs::Real().recvfrom_chk(fd, buf, len, buf_len, flags, from, from_len);
  return rs::Recvfrom(fd, buf, len, flags, from, from_len);
}
