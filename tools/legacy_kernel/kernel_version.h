#ifndef REUSEPORT_TOOLS_LEGACY_KERNEL_KERNEL_VERSION_H_
#define REUSEPORT_TOOLS_LEGACY_KERNEL_KERNEL_VERSION_H_

#include <compare>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace reuseport::legacy_kernel {

// A Linux release such as 3.2 or 2.6.28. Four parts because syscalls(2) has a few
// rows like 2.4.8.1; missing parts are zero, so 3.2 == 3.2.0 < 3.2.1.
struct KernelVersion {
  uint16_t major = 0;
  uint16_t minor = 0;
  uint16_t patch = 0;
  uint16_t sublevel = 0;

  friend constexpr auto operator<=>(const KernelVersion&, const KernelVersion&) = default;
};

// Parses what a user types after --kernel: "X.Y" or "X.Y.Z", digits only.
absl::StatusOr<KernelVersion> ParseKernelVersion(absl::string_view text);

// "3.2", "2.6.28", "2.4.8.1": trailing zero parts after the minor are left out.
std::string FormatKernelVersion(const KernelVersion& version);

// The leading X.Y[.Z] of a kernel release as uname(2) gives it ("6.18.44-fc-v1252",
// "3.2.0-4-amd64"); what follows the digits is ignored.
absl::StatusOr<KernelVersion> ParseKernelRelease(absl::string_view release);

// The release of the kernel this process runs on (uname(2)).
absl::StatusOr<KernelVersion> RunningKernelVersion();

}  // namespace reuseport::legacy_kernel

#endif  // REUSEPORT_TOOLS_LEGACY_KERNEL_KERNEL_VERSION_H_
