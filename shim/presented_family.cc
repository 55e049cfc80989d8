#include "presented_family.h"

#include <errno.h>
#include <stdint.h>

#include "member_table.h"
#include "real_calls.h"
#include "reuseport/address_codec.h"

namespace reuseport::shim {

namespace {

uint8_t g_presented[kMaxTrackedFd];

bool Tracked(int fd) { return fd >= 0 && fd < kMaxTrackedFd; }

}  // namespace

int PresentedFamily(int fd) {
  if (!Tracked(fd)) return 0;
  return __atomic_load_n(&g_presented[fd], __ATOMIC_RELAXED);
}

void PresentFamily(int fd, int family) {
  if (Tracked(fd)) __atomic_store_n(&g_presented[fd], static_cast<uint8_t>(family), __ATOMIC_RELAXED);
}

void ForgetPresentedFamily(int fd) {
  if (Tracked(fd) && __atomic_load_n(&g_presented[fd], __ATOMIC_RELAXED) != 0) {
    __atomic_store_n(&g_presented[fd], 0, __ATOMIC_RELAXED);
  }
}

void CopyPresentedFamily(int from, int to) {
  if (!Tracked(to)) return;
  int family = PresentedFamily(from);
  if (family != 0 || PresentedFamily(to) != 0) PresentFamily(to, family);
}

int PresentedName(int fd, int family, bool peer, struct sockaddr* addr, socklen_t* len) {
  struct sockaddr_storage ss;
  socklen_t ss_len = sizeof(ss);
  int r = peer ? Real().getpeername(fd, reinterpret_cast<struct sockaddr*>(&ss), &ss_len)
               : Real().getsockname(fd, reinterpret_cast<struct sockaddr*>(&ss), &ss_len);
  if (r != 0) return r;
  if (addr == nullptr || len == nullptr) {
    errno = EFAULT;
    return -1;
  }
  struct rp_address a;
  struct sockaddr_storage shown;
  socklen_t shown_len = 0;
  if (rp_address_from_sockaddr(reinterpret_cast<struct sockaddr*>(&ss), ss_len, &a) == 0) {
    shown_len = rp_address_to_sockaddr(&a, family, &shown);
  }
  if (shown_len == 0) {  // not convertible (not an IPv4 address): as the kernel says
    rp_copy_sockaddr_out(&ss, ss_len, addr, len);
  } else {
    rp_copy_sockaddr_out(&shown, shown_len, addr, len);
  }
  return 0;
}

}  // namespace reuseport::shim
