#include "denial_report.h"

#include <sys/utsname.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "syscall_version_table.h"

namespace reuseport::legacy_kernel {
namespace {

std::string MachineName() {
  struct utsname names;
  return uname(&names) == 0 ? names.machine : "this machine";
}

void AppendSyscalls(const DenialPlan& plan, std::string& out) {
  const std::string target = FormatKernelVersion(plan.kernel);
  absl::StrAppend(&out, "System calls that fail with ENOSYS:\n");
  const auto& calls = plan.syscalls;
  for (size_t i = 0; i < calls.size(); ++i) {
    const SyscallDenial& call = calls[i];
    if (call.introduced) {
      absl::StrAppendFormat(&out, "  %4d  %-26s %s\n", call.number, call.name,
                            FormatKernelVersion(*call.introduced));
    } else if (!call.name.empty()) {
      absl::StrAppendFormat(&out, "  %4d  %-26s not in the table, numbered after %d\n", call.number,
                            call.name, plan.newest_present_number);
    } else {
      // Fold a run of numbers nobody has a name for into one line.
      size_t last = i;
      while (last + 1 < calls.size() && !calls[last + 1].introduced && calls[last + 1].name.empty() &&
             calls[last + 1].number == calls[last].number + 1) {
        ++last;
      }
      absl::StrAppendFormat(&out, "  %4d-%d  unnamed numbers, after %d\n", call.number, calls[last].number,
                            plan.newest_present_number);
      i = last;
    }
  }
  absl::StrAppendFormat(&out,
                        "  (%d is the highest number Linux %s has; numbers after it are newer.)\n"
                        "  All i386 (int 0x80, 32-bit programs) and x32 system calls fail with ENOSYS.\n",
                        plan.newest_present_number, target);
}

void AppendFacilities(const DenialPlan& plan, std::string& out) {
  std::string enforced, unenforced;
  for (const FacilityRule* rule : plan.facilities) {
    const std::string line = absl::StrFormat("  %-26s %-6s %s\n", rule->facility,
                                             FormatKernelVersion(rule->introduced), rule->old_kernel_behaviour);
    absl::StrAppend(rule->enforceable ? &enforced : &unenforced, line);
  }
  if (!enforced.empty()) {
    absl::StrAppend(&out, "\nArguments answered as Linux ", FormatKernelVersion(plan.kernel), " did:\n",
                    enforced);
  }
  if (!unenforced.empty()) absl::StrAppend(&out, "\nNewer than the target but not filtered:\n", unenforced);
}

}  // namespace

std::string FormatDenialReport(const DenialPlan& plan) {
  std::string out = absl::StrFormat("Denials for Linux %s on %s\nSystem call table: %s\n\n",
                                    FormatKernelVersion(plan.kernel), MachineName(), SyscallTableSource());
  if (plan.beyond_table) {
    absl::StrAppendFormat(&out,
                          "Linux %s is newer than everything in the table (newest: %s): "
                          "nothing is denied and no filter is installed.\n",
                          FormatKernelVersion(plan.kernel), FormatKernelVersion(plan.newest_in_table));
    return out;
  }
  AppendSyscalls(plan, out);
  AppendFacilities(plan, out);
  return out;
}

}  // namespace reuseport::legacy_kernel
