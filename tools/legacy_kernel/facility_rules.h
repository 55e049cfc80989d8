#ifndef REUSEPORT_TOOLS_LEGACY_KERNEL_FACILITY_RULES_H_
#define REUSEPORT_TOOLS_LEGACY_KERNEL_FACILITY_RULES_H_

#include <cstdint>
#include <span>

#include "absl/strings/string_view.h"
#include "kernel_version.h"

namespace reuseport::legacy_kernel {

// "Argument register `index`, masked with `mask`, equals `value`."
struct ArgumentMatch {
  unsigned index = 0;
  uint64_t mask = 0;
  uint64_t value = 0;
};

// A facility that arrived inside an older system call (a socket option, an ioctl, a
// flag) and what a kernel before `introduced` answered when asked for it.
struct FacilityRule {
  absl::string_view facility;  // "SO_REUSEPORT"
  absl::string_view syscall;   // "setsockopt", as libseccomp names it
  KernelVersion introduced;
  int old_errno = 0;  // what the older kernel returned
  ArgumentMatch matches[2];
  unsigned match_count = 0;
  // False when seccomp cannot see the facility (it sits behind a pointer): such a rule
  // is listed so nobody mistakes the silence for coverage, but never filtered.
  bool enforceable = true;
  absl::string_view old_kernel_behaviour;  // one line, for --list and --explain
};

// The table, in facility_rules.cc.
std::span<const FacilityRule> FacilityRules();

}  // namespace reuseport::legacy_kernel

#endif  // REUSEPORT_TOOLS_LEGACY_KERNEL_FACILITY_RULES_H_
