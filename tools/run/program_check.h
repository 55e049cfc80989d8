// Can libreuseport.so be preloaded into a program? The dynamic loader ignores
// LD_PRELOAD for setuid/setgid programs, statically linked programs have no
// loader at all, and a 64-bit shim cannot enter a 32-bit program; in each case
// the program would run without the emulation, silently. We say so instead.
#ifndef REUSEPORT_TOOLS_RUN_PROGRAM_CHECK_H_
#define REUSEPORT_TOOLS_RUN_PROGRAM_CHECK_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace reuseport::run {

// Resolves a command name like execvp would (PATH search unless it has a '/').
absl::StatusOr<std::string> FindProgram(const std::string& name);

// OK, or FailedPrecondition with the reason the shim cannot be loaded.
// Scripts are judged by their interpreter.
absl::Status CheckPreloadable(const std::string& path);

}  // namespace reuseport::run

#endif  // REUSEPORT_TOOLS_RUN_PROGRAM_CHECK_H_
