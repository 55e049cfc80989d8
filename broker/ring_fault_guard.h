// The broker's defence against a datagram ring that shrinks under it.
//
// A member's processes hold the ring's fd open for writing (they move its
// claim cursor), so any of them can ftruncate() it: the broker's next store
// into the lost pages would then be a SIGBUS, a local user taking down every
// other user's groups. Before Linux 3.17 there are no file seals to forbid
// the shrink, so the broker survives it instead, as Wayland compositors do
// with client memory: while it touches a ring, a SIGBUS handler that finds
// the fault inside that ring maps zero pages over the whole ring (the store
// then completes harmlessly) and marks it faulted; the caller sees that and
// treats the ring as broken. A fault anywhere else is what it always was.
//
// Thread-safety: the broker's event loop thread only (the guarded ring is
// that thread's, and SIGBUS from a memory access goes to the thread that
// faulted).
#ifndef REUSEPORT_BROKER_RING_FAULT_GUARD_H_
#define REUSEPORT_BROKER_RING_FAULT_GUARD_H_

#include <signal.h>

#include <cstddef>
#include <cstdint>

namespace reuseport::broker {

// Installs the SIGBUS handler; once, before the first ring is touched.
void InstallRingFaultHandler();

// While one lives, a SIGBUS inside [memory, memory + size) is survived.
class RingAccess {
 public:
  RingAccess(void* memory, size_t size);
  ~RingAccess();
  RingAccess(const RingAccess&) = delete;
  RingAccess& operator=(const RingAccess&) = delete;

  // True when the ring's memory faulted during this access (and is now zeros).
  bool faulted() const { return faulted_ != 0; }

  // For the handler.
  uintptr_t start_;
  size_t size_;
  volatile sig_atomic_t faulted_ = 0;

 private:
  RingAccess* outer_;
};

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_RING_FAULT_GUARD_H_
