#include "denial_plan.h"

#include <seccomp.h>
#include <stdlib.h>

#include <algorithm>
#include <map>

#include "syscall_version_table.h"

namespace reuseport::legacy_kernel {
namespace {

// libseccomp returns a malloc'ed name, or NULL for numbers it has no name for.
std::string NativeSyscallName(int number) {
  char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, number);
  if (name == nullptr) return "";
  std::string result(name);
  free(name);
  return result;
}

}  // namespace

DenialPlan PlanDenials(const KernelVersion& kernel) {
  DenialPlan plan;
  plan.kernel = kernel;
  for (const SyscallIntroduction& row : SyscallIntroductions()) {
    plan.newest_in_table = std::max(plan.newest_in_table, row.version);
  }
  plan.beyond_table = kernel > plan.newest_in_table;
  if (plan.beyond_table) return plan;

  // Native number -> the earliest table row for it (two names may share a slot).
  // Negative numbers are libseccomp's markers for "a call of another architecture"
  // (socketcall on x86_64): this kernel has no such slot, so there is nothing to deny.
  std::map<int, const SyscallIntroduction*> by_number;
  for (const SyscallIntroduction& row : SyscallIntroductions()) {
    const int number = seccomp_syscall_resolve_name(std::string(row.name).c_str());
    if (number < 0) continue;
    auto [it, inserted] = by_number.emplace(number, &row);
    if (!inserted && row.version < it->second->version) it->second = &row;
  }
  for (const auto& [number, row] : by_number) {
    if (row->version <= kernel) plan.newest_present_number = std::max(plan.newest_present_number, number);
  }

  for (const auto& [number, row] : by_number) {
    if (row->version > kernel) plan.syscalls.push_back({number, std::string(row->name), row->version});
  }
  for (int number = plan.newest_present_number + 1; number <= kHighestDeniedSyscallNumber; ++number) {
    if (!by_number.contains(number)) plan.syscalls.push_back({number, NativeSyscallName(number), std::nullopt});
  }
  std::sort(plan.syscalls.begin(), plan.syscalls.end(),
            [](const SyscallDenial& a, const SyscallDenial& b) { return a.number < b.number; });

  for (const FacilityRule& rule : FacilityRules()) {
    if (rule.introduced <= kernel) continue;
    // When the whole call is missing it already fails with ENOSYS, as it should.
    const int number = seccomp_syscall_resolve_name(std::string(rule.syscall).c_str());
    const bool call_denied = std::any_of(plan.syscalls.begin(), plan.syscalls.end(),
                                         [number](const SyscallDenial& d) { return d.number == number; });
    if (!call_denied) plan.facilities.push_back(&rule);
  }
  return plan;
}

}  // namespace reuseport::legacy_kernel
