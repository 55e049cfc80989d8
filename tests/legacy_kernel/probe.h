#ifndef REUSEPORT_TESTS_LEGACY_KERNEL_PROBE_H_
#define REUSEPORT_TESTS_LEGACY_KERNEL_PROBE_H_

#include <map>
#include <string>
#include <vector>

#include "child_process.h"

namespace reuseport::legacy_kernel::testing {

// The programs under test; CMake passes their paths as compile definitions.
inline const std::string kTool = LEGACY_KERNEL_TOOL;
inline const std::string kProbe = LEGACY_KERNEL_PROBE;

// legacy_kernel_probe's answers: check -> "OK", "ENOSYS", "ENOPROTOOPT", ...
using ProbeAnswers = std::map<std::string, std::string>;

// Runs legacy_kernel_probe on the real kernel.
ProbeAnswers ProbeDirectly(const std::vector<std::string>& checks);

// Runs it under `reuseport-legacy-kernel --kernel <kernel>`.
ProbeAnswers ProbeUnder(const std::string& kernel, const std::vector<std::string>& checks);

// Runs `reuseport-legacy-kernel <args...>`.
ChildResult RunTool(const std::vector<std::string>& args);

}  // namespace reuseport::legacy_kernel::testing

#endif  // REUSEPORT_TESTS_LEGACY_KERNEL_PROBE_H_
