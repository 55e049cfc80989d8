#ifndef REUSEPORT_TOOLS_LEGACY_KERNEL_DENIAL_PLAN_H_
#define REUSEPORT_TOOLS_LEGACY_KERNEL_DENIAL_PLAN_H_

#include <optional>
#include <string>
#include <vector>

#include "facility_rules.h"
#include "kernel_version.h"

namespace reuseport::legacy_kernel {

// Raw system call numbers are denied up to this one. x86_64 has used numbers up to
// about 470 (Linux 6.x) plus the x32-only block 512-547; the margin keeps calls added
// by kernels newer than this tool out of reach too. It costs nothing at run time: the
// filter is a binary search.
inline constexpr int kHighestDeniedSyscallNumber = 1023;

// A native system call number that must fail with ENOSYS.
struct SyscallDenial {
  int number = -1;
  std::string name;                         // empty when neither table nor libseccomp knows it
  std::optional<KernelVersion> introduced;  // from the table; absent for unlisted numbers
};

// Everything the filter denies for one target kernel, on this machine's architecture.
struct DenialPlan {
  KernelVersion kernel;
  KernelVersion newest_in_table;
  // The target is newer than every row of the table: what it lacks is unknown, so
  // nothing is denied.
  bool beyond_table = false;
  // The highest native number whose call the target has. Numbers are allocated in time
  // order (true on x86_64), so numbers above it that the table does not list are newer.
  int newest_present_number = -1;
  std::vector<SyscallDenial> syscalls;  // sorted by number
  std::vector<const FacilityRule*> facilities;  // introduced after the target, in table order
};

// Works out the denials for `kernel` from the embedded tables, resolving names with
// libseccomp for the native architecture (names it does not know there are skipped).
DenialPlan PlanDenials(const KernelVersion& kernel);

}  // namespace reuseport::legacy_kernel

#endif  // REUSEPORT_TOOLS_LEGACY_KERNEL_DENIAL_PLAN_H_
