#include "real_calls.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "exported_hooks.h"
#include "raw_log.h"
#include "settings.h"

namespace reuseport::shim {

RealCalls g_real;
int g_real_resolved = 0;

namespace {

pthread_once_t g_resolve_once = PTHREAD_ONCE_INIT;

// System calls standing in for libc functions the program's C library lacks
// (sendmmsg before glibc 2.14) or that cannot be found at all. They do what
// glibc's wrappers do, without being cancellation points; on a kernel without
// the call they fail with ENOSYS, as glibc's own wrappers would.
long Sys(long nr, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0, long f = 0) {
  return syscall(nr, a, b, c, d, e, f);
}
template <typename T>
long P(T* pointer) {
  return reinterpret_cast<long>(pointer);
}

int SysSocket(int d, int t, int p) { return static_cast<int>(Sys(SYS_socket, d, t, p)); }
int SysSetsockopt(int fd, int l, int n, const void* v, socklen_t len) { return static_cast<int>(Sys(SYS_setsockopt, fd, l, n, P(v), len)); }
int SysGetsockopt(int fd, int l, int n, void* v, socklen_t* len) { return static_cast<int>(Sys(SYS_getsockopt, fd, l, n, P(v), P(len))); }
int SysBind(int fd, const struct sockaddr* a, socklen_t len) { return static_cast<int>(Sys(SYS_bind, fd, P(a), len)); }
int SysListen(int fd, int backlog) { return static_cast<int>(Sys(SYS_listen, fd, backlog)); }
int SysAccept(int fd, struct sockaddr* a, socklen_t* len) { return static_cast<int>(Sys(SYS_accept, fd, P(a), P(len))); }
int SysAccept4(int fd, struct sockaddr* a, socklen_t* len, int flags) { return static_cast<int>(Sys(SYS_accept4, fd, P(a), P(len), flags)); }
int SysConnect(int fd, const struct sockaddr* a, socklen_t len) { return static_cast<int>(Sys(SYS_connect, fd, P(a), len)); }
int SysGetsockname(int fd, struct sockaddr* a, socklen_t* len) { return static_cast<int>(Sys(SYS_getsockname, fd, P(a), P(len))); }
int SysGetpeername(int fd, struct sockaddr* a, socklen_t* len) { return static_cast<int>(Sys(SYS_getpeername, fd, P(a), P(len))); }
int SysShutdown(int fd, int how) { return static_cast<int>(Sys(SYS_shutdown, fd, how)); }
ssize_t SysRecv(int fd, void* b, size_t n, int flags) { return Sys(SYS_recvfrom, fd, P(b), n, flags, 0, 0); }
ssize_t SysRecvfrom(int fd, void* b, size_t n, int flags, struct sockaddr* a, socklen_t* len) {
  return Sys(SYS_recvfrom, fd, P(b), n, flags, P(a), P(len));
}
ssize_t SysRecvmsg(int fd, struct msghdr* m, int flags) { return Sys(SYS_recvmsg, fd, P(m), flags); }
int SysRecvmmsg(int fd, struct mmsghdr* m, unsigned int n, int flags, struct timespec* t) {
  return static_cast<int>(Sys(SYS_recvmmsg, fd, P(m), n, flags, P(t)));
}
ssize_t SysRead(int fd, void* b, size_t n) { return Sys(SYS_read, fd, P(b), n); }
ssize_t SysReadv(int fd, const struct iovec* v, int n) { return Sys(SYS_readv, fd, P(v), n); }
ssize_t SysSend(int fd, const void* b, size_t n, int flags) { return Sys(SYS_sendto, fd, P(b), n, flags, 0, 0); }
ssize_t SysSendto(int fd, const void* b, size_t n, int flags, const struct sockaddr* a, socklen_t len) {
  return Sys(SYS_sendto, fd, P(b), n, flags, P(a), len);
}
ssize_t SysSendmsg(int fd, const struct msghdr* m, int flags) { return Sys(SYS_sendmsg, fd, P(m), flags); }
int SysSendmmsg(int fd, struct mmsghdr* m, unsigned int n, int flags) { return static_cast<int>(Sys(SYS_sendmmsg, fd, P(m), n, flags)); }
ssize_t SysWrite(int fd, const void* b, size_t n) { return Sys(SYS_write, fd, P(b), n); }
ssize_t SysWritev(int fd, const struct iovec* v, int n) { return Sys(SYS_writev, fd, P(v), n); }
int SysClose(int fd) { return static_cast<int>(Sys(SYS_close, fd)); }
int SysDup(int fd) { return static_cast<int>(Sys(SYS_dup, fd)); }
int SysDup2(int fd, int to) { return static_cast<int>(Sys(SYS_dup2, fd, to)); }
int SysDup3(int fd, int to, int flags) { return static_cast<int>(Sys(SYS_dup3, fd, to, flags)); }
// fcntl and ioctl take at most one argument after the command; as in glibc's
// own wrappers, it is read as a pointer-sized value whatever its type.
int SysFcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return static_cast<int>(Sys(SYS_fcntl, fd, cmd, P(arg)));
}
int SysIoctl(int fd, unsigned long request, ...) {
  va_list ap;
  va_start(ap, request);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return static_cast<int>(Sys(SYS_ioctl, fd, static_cast<long>(request), P(arg)));
}

// What went wrong while resolving, for the one message StepAside gives.
struct Trouble {
  const char* name = nullptr;  // the first function that failed
  const char* why = nullptr;
  int more = 0;                // how many others failed too
};

// `required`: a function every glibc has had since long before 2.12 (the
// newer ones, recvmmsg, sendmmsg, accept4 and dup3, are optional). If it is
// missing, or RTLD_NEXT finds the shim's own hook (the library loaded twice,
// or linked in the wrong order: calling it would recurse forever), this is
// not a C library the shim understands, so it steps aside; until then, and
// for whatever the program still calls, the system call stands in. An
// optional function that is missing (sendmmsg before glibc 2.14) just takes
// its stand-in.
template <typename T>
struct Exactly {  // keeps a null stand-in from taking part in deducing Fn
  using type = T;
};

template <typename Fn>
void Resolve(Fn*& slot, const char* name, void* self, typename Exactly<Fn>::type* stand_in, bool required,
             Trouble* trouble) {
  void* fn = dlsym(RTLD_NEXT, name);
  const char* why = nullptr;
  if (fn != nullptr && fn == self) {
    why = "RTLD_NEXT returned the shim's own hook";
  } else if (fn == nullptr && required) {
    why = dlerror();
    if (why == nullptr) why = "not found";
  }
  if (why != nullptr) {
    if (trouble->name == nullptr) {
      trouble->name = name;
      trouble->why = why;
    } else {
      ++trouble->more;
    }
    fn = nullptr;
  }
  slot = fn != nullptr ? reinterpret_cast<Fn*>(fn) : stand_in;
}

void ResolveAll() {
  int saved_errno = errno;
  // The exported hooks (hooks_*.cc) are declared in exported_hooks.h; their
  // addresses identify "ourselves".
  RealCalls& r = g_real;
  Trouble trouble;
#define REQUIRED(field, name, stand_in) \
  Resolve(r.field, #name, reinterpret_cast<void*>(&::name), stand_in, true, &trouble)
#define OPTIONAL(field, name, stand_in) \
  Resolve(r.field, #name, reinterpret_cast<void*>(&::name), stand_in, false, &trouble)
  REQUIRED(socket, socket, SysSocket);
  REQUIRED(setsockopt, setsockopt, SysSetsockopt);
  REQUIRED(getsockopt, getsockopt, SysGetsockopt);
  REQUIRED(bind, bind, SysBind);
  REQUIRED(listen, listen, SysListen);
  REQUIRED(accept, accept, SysAccept);
  OPTIONAL(accept4, accept4, SysAccept4);  // glibc 2.10
  REQUIRED(connect, connect, SysConnect);
  REQUIRED(getsockname, getsockname, SysGetsockname);
  REQUIRED(getpeername, getpeername, SysGetpeername);
  REQUIRED(shutdown, shutdown, SysShutdown);
  REQUIRED(recv, recv, SysRecv);
  REQUIRED(recvfrom, recvfrom, SysRecvfrom);
  REQUIRED(recvmsg, recvmsg, SysRecvmsg);
  OPTIONAL(recvmmsg, recvmmsg, SysRecvmmsg);  // glibc 2.12 (SLES 11 has 2.11)
  REQUIRED(read, read, SysRead);
  REQUIRED(readv, readv, SysReadv);
  REQUIRED(send, send, SysSend);
  REQUIRED(sendto, sendto, SysSendto);
  REQUIRED(sendmsg, sendmsg, SysSendmsg);
  OPTIONAL(sendmmsg, sendmmsg, SysSendmmsg);  // glibc 2.14
  REQUIRED(write, write, SysWrite);
  REQUIRED(writev, writev, SysWritev);
  REQUIRED(close, close, SysClose);
  REQUIRED(dup, dup, SysDup);
  REQUIRED(dup2, dup2, SysDup2);
  OPTIONAL(dup3, dup3, SysDup3);  // glibc 2.9
  REQUIRED(fcntl, fcntl, SysFcntl);
  REQUIRED(ioctl, ioctl, SysIoctl);
  // No stand-in: callers check for null (the hook then does what a libc
  // without the function would have done).
  OPTIONAL(fcntl64, fcntl64, nullptr);          // glibc 2.28
  OPTIONAL(close_range, close_range, nullptr);  // glibc 2.34
  OPTIONAL(closefrom, closefrom, nullptr);      // glibc 2.34
  OPTIONAL(read_chk, __read_chk, nullptr);
  OPTIONAL(recv_chk, __recv_chk, nullptr);
  OPTIONAL(recvfrom_chk, __recvfrom_chk, nullptr);
#undef REQUIRED
#undef OPTIONAL
  __atomic_store_n(&g_real_resolved, 1, __ATOMIC_RELEASE);
  if (trouble.name != nullptr) {
    RawLog log(kLogError);
    log.Str("cannot resolve ").Str(trouble.name).Str(": ").Str(trouble.why);
    if (trouble.more > 0) log.Str(" (and ").Int(trouble.more).Str(" more)");
    log.Emit();
    StepAside();
  }
  errno = saved_errno;
}

}  // namespace

void ResolveRealCalls() { pthread_once(&g_resolve_once, ResolveAll); }

}  // namespace reuseport::shim
