#include "manual_page.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "command_line.h"
#include "denial_plan.h"
#include "syscall_version_table.h"

namespace reuseport::legacy_kernel {
namespace {

constexpr char kText[] = R"(NAME
    reuseport-legacy-kernel - run a command as if on an older Linux kernel

SYNOPSIS
    reuseport-legacy-kernel [--kernel X.Y] [--explain] [--] CMD [ARGS...]
    reuseport-legacy-kernel [--kernel X.Y] --list
    reuseport-legacy-kernel --help

DESCRIPTION
    Runs CMD, and every process it starts, under a seccomp filter that makes the
    system call interface look like that of Linux X.Y (default: $DEFAULT):

    - Every system call added after X.Y fails with ENOSYS. The versions come from
      the table in syscalls(2), compiled into this program from:
        $SOURCE
      Calls newer than that table, or unknown to libseccomp, are denied by number:
      x86_64 numbers are handed out in time order, so every number above the
      highest one X.Y has (up to $HIGHEST) fails with ENOSYS as well.

    - Facilities that arrived later inside older calls fail the way X.Y answered:
      SO_REUSEPORT (3.9), SO_INCOMING_CPU (read 3.19, set 4.4) and
      SO_ATTACH_REUSEPORT_CBPF/EBPF (4.5) in setsockopt/getsockopt give
      ENOPROTOOPT; the SIOCGSKNS ioctl (4.9) gives ENOTTY. EPOLLEXCLUSIVE (4.5)
      cannot be filtered, since it sits in a struct behind a pointer; kernels
      before 4.5 ignored the bit, so the call succeeds there too.

    - uname(2) reports X.Y.Z as the release (the rest of struct utsname is the
      real one). A filter cannot change what a call returns, so it hands uname
      to a small supervisor process (seccomp user notification), which writes
      the answer into the caller's buffer; this needs Linux 5.8 on the host
      (elsewhere uname shows the real release) and works for statically linked
      programs too. /proc/sys/kernel/osrelease and /proc/version are not
      changed. The supervisor, "reuseport-uname", is nobody's child in CMD's
      tree and exits when the last process under the filter does.

    - Only 64-bit (x86_64) programs are emulated: every i386 system call (a
      32-bit program, or int 0x80) and every x32 call fails with ENOSYS.

    CMD then replaces this program (execvp), so its exit status and signals are
    its own. Programs that handle ENOSYS keep working: glibc falls back from
    clone3, rseq, faccessat2, statx and close_range, Python from getrandom, and
    nginx and dnsmasq run unchanged.

    Only the interface is old. The running kernel still behaves as itself in
    everything else: new flags of old calls, /proc and /sys contents, and calls
    it has removed (such as _sysctl) stay removed. A program that passes under
    this tool uses nothing newer than X.Y that can be seen in a system call
    number or a filtered argument.

    A version newer than the newest call in the table ($NEWEST) is accepted; then
    nothing is denied and no filter is installed. Nor is one installed on a
    kernel of the X.Y series or older (a real Linux 3.2, where no filter could
    be installed before 3.5 anyway): that kernel already answers as X.Y, and
    CMD runs as it is (--explain says so).

OPTIONS
    --kernel X.Y, --kernel=X.Y
        The kernel to emulate, as X.Y or X.Y.Z (default $DEFAULT).

    --list
        Print what would be denied for that kernel, and exit without running
        anything.

    --explain
        Print the same list to standard error once, then run CMD.

    -h, --help
        Print this manual and exit.

    --
        End of options; everything after it is CMD and its arguments. Options
        also end at the first argument that is not one of ours.

EXIT STATUS
    CMD's own exit status (or its death by a signal), once it runs.
    0    --help or --list.
    2    Usage error: unknown option, bad --kernel version, no CMD.
    125  The seccomp filter could not be installed.
    126  CMD was found but could not be executed (permission, format, ...).
    127  CMD was not found.

NOTES
    Installing the filter sets no_new_privs (prctl PR_SET_NO_NEW_PRIVS), which
    Linux requires of unprivileged processes before they may install one. It is
    inherited and cannot be cleared, and execve() then ignores setuid and setgid
    bits and file capabilities: setuid programs run under this tool WITHOUT
    their privileges.

    The filter cannot be removed and applies to every descendant of CMD.

EXAMPLES
    Check that Python copes with a kernel lacking getrandom(2):
        reuseport-legacy-kernel -- python3 -c 'import os; print(os.urandom(8))'

    Run nginx as on Linux 3.8, where SO_REUSEPORT does not exist yet:
        reuseport-legacy-kernel --kernel 3.8 -- nginx -g 'daemon off;'

    List what is denied for Linux 3.2, without running anything:
        reuseport-legacy-kernel --kernel 3.2 --list

    Run dnsmasq, printing the denials first:
        reuseport-legacy-kernel --explain -- dnsmasq --no-daemon

SEE ALSO
    syscalls(2), seccomp(2), prctl(2), socket(7), execvp(3)
)";

}  // namespace

std::string ManualPage() {
  KernelVersion newest;
  for (const SyscallIntroduction& row : SyscallIntroductions()) newest = std::max(newest, row.version);
  return absl::StrReplaceAll(kText, {{"$DEFAULT", FormatKernelVersion(kDefaultKernel)},
                                     {"$SOURCE", SyscallTableSource()},
                                     {"$HIGHEST", absl::StrCat(kHighestDeniedSyscallNumber)},
                                     {"$NEWEST", FormatKernelVersion(newest)}});
}

}  // namespace reuseport::legacy_kernel
