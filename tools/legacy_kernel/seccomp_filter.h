#ifndef REUSEPORT_TOOLS_LEGACY_KERNEL_SECCOMP_FILTER_H_
#define REUSEPORT_TOOLS_LEGACY_KERNEL_SECCOMP_FILTER_H_

#include "absl/status/status.h"
#include "denial_plan.h"

namespace reuseport::legacy_kernel {

// Installs a seccomp filter on the calling thread that answers every denial in `plan`
// with its errno and lets everything else through. It cannot be undone, is inherited
// by children and survives execve(). Sets no_new_privs first (libseccomp's default),
// which an unprivileged process needs to install a filter at all.
absl::Status InstallSeccompFilter(const DenialPlan& plan);

}  // namespace reuseport::legacy_kernel

#endif  // REUSEPORT_TOOLS_LEGACY_KERNEL_SECCOMP_FILTER_H_
