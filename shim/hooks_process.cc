// The shim's start: real functions resolved, fork handlers installed, fds
// inherited across exec noted (process_life.h); and the fork() hook.
#include "exported_hooks.h"
#include "process_life.h"
#include "real_calls.h"

namespace reuseport::shim {
namespace {
__attribute__((constructor)) void StartShim() {
  ResolveRealCalls();
  StartProcessLife();
}
}  // namespace
}  // namespace reuseport::shim

pid_t fork() noexcept { return reuseport::shim::Fork(); }
