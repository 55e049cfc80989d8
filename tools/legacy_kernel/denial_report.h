#ifndef REUSEPORT_TOOLS_LEGACY_KERNEL_DENIAL_REPORT_H_
#define REUSEPORT_TOOLS_LEGACY_KERNEL_DENIAL_REPORT_H_

#include <string>

#include "denial_plan.h"

namespace reuseport::legacy_kernel {

// The human-readable list of what `plan` denies, one denial per line (numbers without
// a known name are folded into ranges). Printed by --list and, to stderr, by --explain.
std::string FormatDenialReport(const DenialPlan& plan);

}  // namespace reuseport::legacy_kernel

#endif  // REUSEPORT_TOOLS_LEGACY_KERNEL_DENIAL_REPORT_H_
