#include "seccomp_filter.h"

#include <errno.h>
#include <seccomp.h>
#include <string.h>

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace reuseport::legacy_kernel {
namespace {

struct FilterReleaser {
  void operator()(void* filter) const { seccomp_release(filter); }
};
using Filter = std::unique_ptr<void, FilterReleaser>;

// libseccomp returns -errno.
absl::Status Check(int result, absl::string_view what) {
  if (result == 0) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": ", strerror(-result)));
}

absl::Status AddFacilityRule(void* filter, const FacilityRule& rule) {
  const int number = seccomp_syscall_resolve_name(std::string(rule.syscall).c_str());
  if (number < 0) return absl::OkStatus();  // not a native call here: nothing to match
  std::vector<scmp_arg_cmp> comparisons;
  for (unsigned i = 0; i < rule.match_count; ++i) {
    const ArgumentMatch& match = rule.matches[i];
    comparisons.push_back(SCMP_CMP(match.index, SCMP_CMP_MASKED_EQ, match.mask, match.value));
  }
  return Check(seccomp_rule_add_array(filter, SCMP_ACT_ERRNO(rule.old_errno), number,
                                      comparisons.size(), comparisons.data()),
               absl::StrCat("rule for ", rule.facility, " in ", rule.syscall));
}

absl::StatusOr<Filter> BuildFilter(const DenialPlan& plan, bool notify_uname) {
  Filter filter(seccomp_init(SCMP_ACT_ALLOW));
  if (!filter) return absl::InternalError("seccomp_init failed");

  // Only native (x86_64) calls are filtered. An i386 call (int 0x80, or a 32-bit
  // program) or an x32 call would need rules of its own, and even then i386 reaches
  // setsockopt through socketcall(2), whose arguments sit behind a pointer seccomp
  // cannot read: SO_REUSEPORT would silently work there. Failing every foreign-ABI call
  // with ENOSYS instead stops such a program at its first system call rather than let
  // it run half-emulated. (x32 calls carry bit 0x40000000 in the x86_64 ABI; libseccomp
  // sends those to this same action.)
  if (absl::Status status = Check(
          seccomp_attr_set(filter.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ERRNO(ENOSYS)),
          "setting the foreign-architecture action");
      !status.ok()) {
    return status;
  }
  // Several hundred rules: a binary search keeps every system call cheap. Optional,
  // libseccomp older than 2.5 lacks it and still builds a correct (linear) filter.
  seccomp_attr_set(filter.get(), SCMP_FLTATR_CTL_OPTIMIZE, 2);

  for (const SyscallDenial& denial : plan.syscalls) {
    if (absl::Status status = Check(seccomp_rule_add(filter.get(), SCMP_ACT_ERRNO(ENOSYS), denial.number, 0),
                                    absl::StrCat("rule for system call ", denial.number));
        !status.ok()) {
      return status;
    }
  }
  for (const FacilityRule* rule : plan.facilities) {
    if (!rule->enforceable) continue;
    if (absl::Status status = AddFacilityRule(filter.get(), *rule); !status.ok()) return status;
  }
  if (notify_uname) {
    if (absl::Status status = Check(seccomp_rule_add(filter.get(), SCMP_ACT_NOTIFY, SCMP_SYS(uname), 0),
                                    "rule for uname");
        !status.ok()) {
      return status;
    }
  }
  return filter;
}

}  // namespace

absl::StatusOr<int> InstallSeccompFilter(const DenialPlan& plan, bool notify_uname) {
  absl::StatusOr<Filter> filter = BuildFilter(plan, notify_uname);
  if (!filter.ok()) return filter.status();
  int result = seccomp_load(filter->get());
  if (result == -EBUSY && notify_uname) {
    // A filter of an outer runner has the chain's one listener.
    filter = BuildFilter(plan, false);
    if (!filter.ok()) return filter.status();
    notify_uname = false;
    result = seccomp_load(filter->get());
  }
  if (absl::Status status = Check(result, "loading the seccomp filter"); !status.ok()) return status;
  return notify_uname ? seccomp_notify_fd(filter->get()) : -1;
}

}  // namespace reuseport::legacy_kernel
