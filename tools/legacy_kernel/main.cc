// reuseport-legacy-kernel: runs a command as if on an older Linux kernel.
// See manual_page.cc (or --help) for what it does and why.

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <string>

#include "command_line.h"
#include "denial_plan.h"
#include "denial_report.h"
#include "manual_page.h"
#include "seccomp_filter.h"

namespace {

constexpr char kProgram[] = "reuseport-legacy-kernel";

// The conventions of env(1) and nice(1), which also run a command in place.
constexpr int kExitUsage = 2;
constexpr int kExitFilterFailed = 125;
constexpr int kExitCannotExecute = 126;
constexpr int kExitNotFound = 127;

}  // namespace

int main(int argc, char** argv) {
  using namespace reuseport::legacy_kernel;

  absl::StatusOr<Options> options = ParseCommandLine(argc, argv);
  if (!options.ok()) {
    fprintf(stderr, "%s: %s\n%s", kProgram, std::string(options.status().message()).c_str(), kUsageLine);
    return kExitUsage;
  }
  if (options->help) {
    fputs(ManualPage().c_str(), stdout);
    return 0;
  }

  const DenialPlan plan = PlanDenials(options->kernel);
  if (options->list) {
    fputs(FormatDenialReport(plan).c_str(), stdout);
    return 0;
  }
  if (options->explain) fputs(FormatDenialReport(plan).c_str(), stderr);

  if (!plan.beyond_table) {
    if (absl::Status status = InstallSeccompFilter(plan); !status.ok()) {
      fprintf(stderr, "%s: %s\n", kProgram, std::string(status.message()).c_str());
      return kExitFilterFailed;
    }
  }

  options->command.push_back(nullptr);
  execvp(options->command[0], options->command.data());
  const int error = errno;
  fprintf(stderr, "%s: %s: %s\n", kProgram, options->command[0], strerror(error));
  return error == ENOENT ? kExitNotFound : kExitCannotExecute;
}
