#ifndef REUSEPORT_TOOLS_LEGACY_KERNEL_SECCOMP_FILTER_H_
#define REUSEPORT_TOOLS_LEGACY_KERNEL_SECCOMP_FILTER_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "denial_plan.h"

namespace reuseport::legacy_kernel {

// Installs a seccomp filter on the calling thread that answers every denial in `plan`
// with its errno and lets everything else through. It cannot be undone, is inherited
// by children and survives execve(). Sets no_new_privs first (libseccomp's default),
// which an unprivileged process needs to install a filter at all.
//
// With `notify_uname`, uname(2) goes to a supervisor (uname_supervisor.h) and the
// filter's listener fd is returned; -1 when there is none. A filter earlier in the
// chain may have a listener already (the runner under itself): the kernel allows one
// per chain, so this one is then installed without, and that earlier supervisor keeps
// answering uname.
absl::StatusOr<int> InstallSeccompFilter(const DenialPlan& plan, bool notify_uname = false);

}  // namespace reuseport::legacy_kernel

#endif  // REUSEPORT_TOOLS_LEGACY_KERNEL_SECCOMP_FILTER_H_
