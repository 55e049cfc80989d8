// reuseport-legacy-kernel: runs a command as if on an older Linux kernel.
// See manual_page.cc (or --help) for what it does and why.

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <string>
#include <utility>

#include "command_line.h"
#include "denial_plan.h"
#include "denial_report.h"
#include "kernel_version.h"
#include "manual_page.h"
#include "seccomp_filter.h"
#include "uname_supervisor.h"

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

  // On a kernel of the target's series or older (a real Linux 3.2) there is
  // nothing to take away, and a filter could not be installed before 3.5
  // anyway: the command runs as it is.
  const absl::StatusOr<KernelVersion> running = RunningKernelVersion();
  const bool already_old =
      running.ok() && std::make_pair(running->major, running->minor) <=
                          std::make_pair(options->kernel.major, options->kernel.minor);
  if (already_old && options->explain) {
    fprintf(stderr, "%s: running on Linux %s already: nothing is emulated\n", kProgram,
            FormatKernelVersion(*running).c_str());
  }
  if (!plan.beyond_table && !already_old) {
    // uname(2) says the pretended release where this kernel lets a
    // supervisor answer it (uname_supervisor.h); elsewhere it says the real one.
    int supervisor = -1;
    if (running.ok() && CanSuperviseUname(*running)) {
      absl::StatusOr<int> started = StartUnameSupervisor(PretendedRelease(options->kernel));
      if (started.ok()) {
        supervisor = *started;
      } else if (options->explain) {
        fprintf(stderr, "%s: %s; uname(2) shows the real release\n", kProgram,
                std::string(started.status().message()).c_str());
      }
    } else if (options->explain) {
      fprintf(stderr, "%s: uname(2) shows the real release (answering it needs Linux 5.8)\n", kProgram);
    }
    absl::StatusOr<int> listener = InstallSeccompFilter(plan, supervisor >= 0);
    if (!listener.ok()) {
      fprintf(stderr, "%s: %s\n", kProgram, std::string(listener.status().message()).c_str());
      return kExitFilterFailed;
    }
    if (*listener >= 0) {
      if (absl::Status status = HandOverUnameListener(supervisor, *listener); !status.ok()) {
        // The filter is in place and the listener gone: uname would fail with ENOSYS.
        fprintf(stderr, "%s: %s\n", kProgram, std::string(status.message()).c_str());
        return kExitFilterFailed;
      }
    } else if (supervisor >= 0) {
      close(supervisor);  // an outer runner answers uname; this supervisor exits
    }
  }

  options->command.push_back(nullptr);
  execvp(options->command[0], options->command.data());
  const int error = errno;
  fprintf(stderr, "%s: %s: %s\n", kProgram, options->command[0], strerror(error));
  return error == ENOENT ? kExitNotFound : kExitCannotExecute;
}
