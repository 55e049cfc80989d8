#ifndef REUSEPORT_TOOLS_LEGACY_KERNEL_COMMAND_LINE_H_
#define REUSEPORT_TOOLS_LEGACY_KERNEL_COMMAND_LINE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernel_version.h"

namespace reuseport::legacy_kernel {

inline constexpr KernelVersion kDefaultKernel{3, 2};

// What the user asked for on the command line.
struct Options {
  KernelVersion kernel = kDefaultKernel;
  bool help = false;
  bool list = false;
  bool explain = false;
  std::vector<char*> command;  // CMD and its arguments, pointing into argv
};

// Parses `reuseport-legacy-kernel [--kernel X.Y] [--list] [--explain] [--] CMD [ARGS...]`.
// Options end at "--" or at the first argument that is not one, as with env(1), so
// CMD's own options are never ours. An InvalidArgument status is a usage error.
//
// Not absl::flags: its parser exits with status 1 on an unknown flag and owns --help,
// while a command wrapper must exit 2 on usage errors and print its own manual.
absl::StatusOr<Options> ParseCommandLine(int argc, char** argv);

// The one-line synopsis printed after a usage error.
inline constexpr char kUsageLine[] =
    "usage: reuseport-legacy-kernel [--kernel X.Y] [--list] [--explain] [--] CMD [ARGS...]\n"
    "       reuseport-legacy-kernel --help\n";

}  // namespace reuseport::legacy_kernel

#endif  // REUSEPORT_TOOLS_LEGACY_KERNEL_COMMAND_LINE_H_
