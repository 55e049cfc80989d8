// Exported hooks for socket setup. One line each: the logic is in shim.h.
#include "exported_hooks.h"
#include "member_table.h"
#include "real_calls.h"
#include "shim.h"

namespace rs = reuseport::shim;

int socket(int domain, int type, int protocol) noexcept {
  int fd = rs::Real().socket(domain, type, protocol);
  rs::ForgetStaleFd(fd);
  return fd;
}
int setsockopt(int fd, int level, int name, const void* value, socklen_t len) noexcept { return rs::Setsockopt(fd, level, name, value, len); }
int getsockopt(int fd, int level, int name, void* value, socklen_t* len) noexcept { return rs::Getsockopt(fd, level, name, value, len); }
int bind(int fd, const struct sockaddr* addr, socklen_t len) noexcept { return rs::Bind(fd, addr, len); }
int listen(int fd, int backlog) noexcept { return rs::Listen(fd, backlog); }
int connect(int fd, const struct sockaddr* addr, socklen_t len) { return rs::Connect(fd, addr, len); }
int getsockname(int fd, struct sockaddr* addr, socklen_t* len) noexcept { return rs::Getsockname(fd, addr, len); }
int getpeername(int fd, struct sockaddr* addr, socklen_t* len) noexcept { return rs::Getpeername(fd, addr, len); }
int shutdown(int fd, int how) noexcept { return rs::Shutdown(fd, how); }
