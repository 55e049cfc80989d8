// The shim's real_calls.cc finds libc's functions with dlsym(RTLD_NEXT) from
// inside the preloaded library; a test program defines no hooks, so here the
// table is simply libc's own functions.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "real_calls.h"

namespace reuseport::shim {

RealCalls g_real;
int g_real_resolved = 0;

void ResolveRealCalls() {
  g_real.socket = ::socket;
  g_real.setsockopt = ::setsockopt;
  g_real.getsockopt = ::getsockopt;
  g_real.getsockname = ::getsockname;
  g_real.getpeername = ::getpeername;
  g_real.close = ::close;
  g_real.fcntl = ::fcntl;
  g_real.dup = ::dup;
  g_real.dup2 = ::dup2;
  g_real.dup3 = ::dup3;
  __atomic_store_n(&g_real_resolved, 1, __ATOMIC_RELEASE);
}

}  // namespace reuseport::shim
