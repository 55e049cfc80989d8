#ifndef REUSEPORT_TOOLS_LEGACY_KERNEL_MANUAL_PAGE_H_
#define REUSEPORT_TOOLS_LEGACY_KERNEL_MANUAL_PAGE_H_

#include <string>

namespace reuseport::legacy_kernel {

// The text --help prints, laid out like a manual page.
std::string ManualPage();

}  // namespace reuseport::legacy_kernel

#endif  // REUSEPORT_TOOLS_LEGACY_KERNEL_MANUAL_PAGE_H_
