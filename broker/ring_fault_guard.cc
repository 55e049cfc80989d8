#include "ring_fault_guard.h"

#include <signal.h>
#include <string.h>
#include <sys/mman.h>

#include <cstdint>

namespace reuseport::broker {

namespace {

// The ring being touched now; read by the handler on the same thread.
thread_local RingAccess* current = nullptr;
struct sigaction previous;

void OnSigbus(int signal, siginfo_t* info, void* context) {
  RingAccess* g = current;
  uintptr_t at = reinterpret_cast<uintptr_t>(info->si_addr);
  if (g != nullptr && at >= g->start_ && at - g->start_ < g->size_) {
    // Zero pages in place of the whole ring: the faulting access is retried
    // against them and succeeds.
    void* replaced = mmap(reinterpret_cast<void*>(g->start_), g->size_, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (replaced != MAP_FAILED) {
      g->faulted_ = 1;
      return;
    }
  }
  // Not ours (or not recoverable): what SIGBUS would have done.
  if (previous.sa_flags & SA_SIGINFO) {
    if (previous.sa_sigaction != nullptr) {
      previous.sa_sigaction(signal, info, context);
      return;
    }
  } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
    previous.sa_handler(signal);
    return;
  }
  struct sigaction dfl;
  memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  sigaction(SIGBUS, &dfl, nullptr);  // returning re-runs the access: now fatal
}

}  // namespace

void InstallRingFaultHandler() {
  static bool installed = false;
  if (installed) return;
  installed = true;
  struct sigaction action;
  memset(&action, 0, sizeof(action));
  action.sa_sigaction = OnSigbus;
  action.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&action.sa_mask);
  sigaction(SIGBUS, &action, &previous);
}

RingAccess::RingAccess(void* memory, size_t size)
    : start_(reinterpret_cast<uintptr_t>(memory)), size_(size), outer_(current) {
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  current = this;
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

RingAccess::~RingAccess() {
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  current = outer_;
}

}  // namespace reuseport::broker
