// The libc functions the shim interposes, resolved with dlsym(RTLD_NEXT).
//
// Internal code calls only these, never the exported hooks, so the shim never
// re-enters itself. Resolution is lazy and once-guarded because hooks can run
// before our constructor (from other libraries' constructors). A function the
// C library lacks (sendmmsg before glibc 2.14) gets a system call standing in;
// if a function every glibc since 2.12 has cannot be found, the shim steps
// aside (settings.h) rather than stop the program.
#ifndef REUSEPORT_SHIM_REAL_CALLS_H_
#define REUSEPORT_SHIM_REAL_CALLS_H_

#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

namespace reuseport::shim {

struct RealCalls {
  int (*socket)(int, int, int);
  int (*setsockopt)(int, int, int, const void*, socklen_t);
  int (*getsockopt)(int, int, int, void*, socklen_t*);
  int (*bind)(int, const struct sockaddr*, socklen_t);
  int (*listen)(int, int);
  int (*accept)(int, struct sockaddr*, socklen_t*);
  int (*accept4)(int, struct sockaddr*, socklen_t*, int);
  int (*connect)(int, const struct sockaddr*, socklen_t);
  int (*getsockname)(int, struct sockaddr*, socklen_t*);
  int (*getpeername)(int, struct sockaddr*, socklen_t*);
  int (*shutdown)(int, int);
  ssize_t (*recv)(int, void*, size_t, int);
  ssize_t (*recvfrom)(int, void*, size_t, int, struct sockaddr*, socklen_t*);
  ssize_t (*recvmsg)(int, struct msghdr*, int);
  int (*recvmmsg)(int, struct mmsghdr*, unsigned int, int, struct timespec*);
  ssize_t (*read)(int, void*, size_t);
  ssize_t (*readv)(int, const struct iovec*, int);
  ssize_t (*send)(int, const void*, size_t, int);
  ssize_t (*sendto)(int, const void*, size_t, int, const struct sockaddr*, socklen_t);
  ssize_t (*sendmsg)(int, const struct msghdr*, int);
  int (*sendmmsg)(int, struct mmsghdr*, unsigned int, int);  // glibc 2.14, else the system call
  ssize_t (*write)(int, const void*, size_t);
  ssize_t (*writev)(int, const struct iovec*, int);
  int (*close)(int);
  int (*dup)(int);
  int (*dup2)(int, int);
  int (*dup3)(int, int, int);
  int (*fcntl)(int, int, ...);
  int (*fcntl64)(int, int, ...);  // may be null (older glibc)
  int (*ioctl)(int, unsigned long, ...);
  int (*close_range)(unsigned int, unsigned int, int);  // may be null
  void (*closefrom)(int);                               // may be null
  ssize_t (*read_chk)(int, void*, size_t, size_t);      // __read_chk
  ssize_t (*recv_chk)(int, void*, size_t, size_t, int); // __recv_chk
  ssize_t (*recvfrom_chk)(int, void*, size_t, size_t, int, struct sockaddr*, socklen_t*);
};

extern RealCalls g_real;
extern int g_real_resolved;  // atomic flag, set once every pointer is filled

void ResolveRealCalls();

// The hot path: one load and a predictable branch.
inline const RealCalls& Real() {
  if (__builtin_expect(!__atomic_load_n(&g_real_resolved, __ATOMIC_ACQUIRE), 0)) ResolveRealCalls();
  return g_real;
}

}  // namespace reuseport::shim

#endif  // REUSEPORT_SHIM_REAL_CALLS_H_
