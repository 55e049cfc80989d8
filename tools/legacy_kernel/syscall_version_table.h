#ifndef REUSEPORT_TOOLS_LEGACY_KERNEL_SYSCALL_VERSION_TABLE_H_
#define REUSEPORT_TOOLS_LEGACY_KERNEL_SYSCALL_VERSION_TABLE_H_

#include <span>

#include "absl/strings/string_view.h"
#include "kernel_version.h"

namespace reuseport::legacy_kernel {

// One row of syscall_versions.tsv: a system call and the release that added it.
struct SyscallIntroduction {
  absl::string_view name;
  KernelVersion version;
};

// The rows of syscall_versions.tsv, compiled in at build time (embed_syscall_versions.cmake)
// so the installed binary needs no data file. Sorted by name; every architecture's
// calls, including ones this machine does not have.
std::span<const SyscallIntroduction> SyscallIntroductions();

// Where the rows came from: the "# source:" line of the .tsv, for --help and --list.
absl::string_view SyscallTableSource();

}  // namespace reuseport::legacy_kernel

#endif  // REUSEPORT_TOOLS_LEGACY_KERNEL_SYSCALL_VERSION_TABLE_H_
