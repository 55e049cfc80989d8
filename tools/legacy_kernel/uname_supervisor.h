// uname(2) as the pretended kernel answers it.
//
// A seccomp filter can fail a call or let it through; it cannot change what a
// call returns. So the runner's filter hands uname to a supervisor
// (SECCOMP_RET_USER_NOTIF, Linux 5.0): the calling thread waits while the
// supervisor writes the real utsname, with `release` replaced, into its buffer
// through /proc/PID/mem, then the call returns 0. This holds for static
// programs too, since nothing runs inside the command. Only the system call
// changes: /proc/sys/kernel/osrelease and /proc/version still show the real
// kernel, as the rest of /proc does (see the manual).
//
// Process layout: the supervisor is forked before the filter exists (so it is
// not under it) and forked again so that it is nobody's child in the command's
// tree: the command keeps the runner's pid and sees no extra child. It runs in
// a session of its own (a Ctrl-C to the command's process group does not end
// it), holds no fd of the command's, and exits when the listener reports that
// no process uses the filter any more (POLLHUP, Linux 5.8) or when the runner
// closes the socket without handing it a listener.
//
// Where the supervisor may not write into a process (one that is not dumpable,
// or a Yama ptrace_scope that forbids it), that process's uname runs as the
// real call and shows the real release: the one divergence left, never an
// error the real kernel would not give.
#ifndef REUSEPORT_TOOLS_LEGACY_KERNEL_UNAME_SUPERVISOR_H_
#define REUSEPORT_TOOLS_LEGACY_KERNEL_UNAME_SUPERVISOR_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernel_version.h"

namespace reuseport::legacy_kernel {

// The kernel the runner runs on can host the supervisor: user notification
// with SECCOMP_USER_NOTIF_FLAG_CONTINUE (5.5) and POLLHUP on an unused
// listener (5.8), without which the supervisor would never know to exit.
bool CanSuperviseUname(const KernelVersion& running);

// What uname(2) reports as the release under --kernel X.Y[.Z]: "X.Y.Z".
std::string PretendedRelease(const KernelVersion& kernel);

// Starts the supervisor; returns the runner's end of the socket to hand it
// the listener over. Must be called before the filter is installed.
absl::StatusOr<int> StartUnameSupervisor(const std::string& release);

// Passes the filter's listener to the supervisor, and closes both fds here.
absl::Status HandOverUnameListener(int socket, int listener);

}  // namespace reuseport::legacy_kernel

#endif  // REUSEPORT_TOOLS_LEGACY_KERNEL_UNAME_SUPERVISOR_H_
