#include "batch_io.h"

#include <errno.h>

namespace reuseport::broker {

namespace {

// Cleared for good the first time the kernel answers ENOSYS. Only the broker's
// event-loop thread does datagram I/O, but tests may call from others.
bool g_have_recvmmsg = true;
bool g_have_sendmmsg = true;

}  // namespace

int ReceiveBatch(int fd, struct mmsghdr* msgs, unsigned count, int flags) {
  if (__atomic_load_n(&g_have_recvmmsg, __ATOMIC_RELAXED)) {
    int n = recvmmsg(fd, msgs, count, flags, nullptr);
    if (n >= 0 || errno != ENOSYS) return n;
    __atomic_store_n(&g_have_recvmmsg, false, __ATOMIC_RELAXED);
  }
  unsigned done = 0;
  while (done < count) {
    ssize_t n = recvmsg(fd, &msgs[done].msg_hdr, flags);
    if (n < 0) return done > 0 ? static_cast<int>(done) : -1;
    msgs[done].msg_len = static_cast<unsigned>(n);
    ++done;
  }
  return static_cast<int>(done);
}

int SendBatch(int fd, struct mmsghdr* msgs, unsigned count, int flags) {
  if (__atomic_load_n(&g_have_sendmmsg, __ATOMIC_RELAXED)) {
    int n = sendmmsg(fd, msgs, count, flags);
    if (n >= 0 || errno != ENOSYS) return n;
    __atomic_store_n(&g_have_sendmmsg, false, __ATOMIC_RELAXED);
  }
  unsigned done = 0;
  while (done < count) {
    ssize_t n = sendmsg(fd, &msgs[done].msg_hdr, flags);
    if (n < 0) return done > 0 ? static_cast<int>(done) : -1;
    msgs[done].msg_len = static_cast<unsigned>(n);
    ++done;
  }
  return static_cast<int>(done);
}

void ForgetBatchCallsForTesting() {
  __atomic_store_n(&g_have_recvmmsg, false, __ATOMIC_RELAXED);
  __atomic_store_n(&g_have_sendmmsg, false, __ATOMIC_RELAXED);
}

}  // namespace reuseport::broker
