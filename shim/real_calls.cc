#include "real_calls.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "exported_hooks.h"
#include "raw_log.h"

namespace reuseport::shim {

RealCalls g_real;
int g_real_resolved = 0;

namespace {

pthread_once_t g_resolve_once = PTHREAD_ONCE_INIT;

// A hook resolving to itself means RTLD_NEXT found us again (the library was
// loaded twice, or linked in the wrong order): calling it would recurse forever.
template <typename Fn>
void Resolve(Fn*& slot, const char* name, void* self, bool required) {
  void* fn = dlsym(RTLD_NEXT, name);
  if (fn != nullptr && fn == self) {
    RawLog(kLogError).Str("cannot resolve ").Str(name).Str(": RTLD_NEXT returned the shim's own hook").Emit();
    abort();
  }
  if (fn == nullptr && required) {
    const char* why = dlerror();
    RawLog(kLogError).Str("cannot resolve ").Str(name).Str(": ").Str(why ? why : "not found").Emit();
    abort();
  }
  slot = reinterpret_cast<Fn*>(fn);
}

void ResolveAll() {
  // The exported hooks (hooks_*.cc) are declared in exported_hooks.h; their
  // addresses identify "ourselves".
  RealCalls& r = g_real;
#define REQUIRED(field, name) Resolve(r.field, #name, reinterpret_cast<void*>(&::name), true)
#define OPTIONAL(field, name) Resolve(r.field, #name, reinterpret_cast<void*>(&::name), false)
  REQUIRED(socket, socket);
  REQUIRED(setsockopt, setsockopt);
  REQUIRED(getsockopt, getsockopt);
  REQUIRED(bind, bind);
  REQUIRED(listen, listen);
  REQUIRED(accept, accept);
  REQUIRED(accept4, accept4);
  REQUIRED(connect, connect);
  REQUIRED(getsockname, getsockname);
  REQUIRED(getpeername, getpeername);
  REQUIRED(shutdown, shutdown);
  REQUIRED(recv, recv);
  REQUIRED(recvfrom, recvfrom);
  REQUIRED(recvmsg, recvmsg);
  REQUIRED(recvmmsg, recvmmsg);
  REQUIRED(read, read);
  REQUIRED(readv, readv);
  REQUIRED(send, send);
  REQUIRED(sendto, sendto);
  REQUIRED(sendmsg, sendmsg);
  REQUIRED(sendmmsg, sendmmsg);
  REQUIRED(write, write);
  REQUIRED(writev, writev);
  REQUIRED(close, close);
  REQUIRED(dup, dup);
  REQUIRED(dup2, dup2);
  REQUIRED(dup3, dup3);
  REQUIRED(fcntl, fcntl);
  REQUIRED(ioctl, ioctl);
#undef REQUIRED
  OPTIONAL(fcntl64, fcntl64);
  OPTIONAL(close_range, close_range);
  OPTIONAL(closefrom, closefrom);
  OPTIONAL(read_chk, __read_chk);
  OPTIONAL(recv_chk, __recv_chk);
  OPTIONAL(recvfrom_chk, __recvfrom_chk);
#undef OPTIONAL
  __atomic_store_n(&g_real_resolved, 1, __ATOMIC_RELEASE);
}

}  // namespace

void ResolveRealCalls() { pthread_once(&g_resolve_once, ResolveAll); }

}  // namespace reuseport::shim
