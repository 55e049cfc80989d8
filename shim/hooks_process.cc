// Process life: fork handlers keep the shim's lock usable in a child forked
// while another thread held it.
#include "member_table.h"
#include "real_calls.h"

namespace reuseport::shim {
namespace {
__attribute__((constructor)) void StartShim() {
  ResolveRealCalls();
  InstallForkHandlers();
}
}  // namespace
}  // namespace reuseport::shim
