// After start the broker keeps only what it needs.
//
// Capabilities: CAP_NET_ADMIN (channel buffers above the sysctl limit),
// CAP_NET_BIND_SERVICE (ports the policy grants), CAP_SYS_PTRACE (reading
// other users' /proc/PID/ns/net where SIOCGSKNS is missing); everything else
// leaves the bounding, permitted and effective sets.
//
// System calls: a libseccomp allow-list of what the event loop, the control
// protocol and libc use; anything else kills the broker (or fails with EPERM
// with --seccomp=errno). Seccomp filters arrived in Linux 3.5; on older
// kernels the broker says so and runs without.
//
// SIGHUP starts a successor with fork and exec, which the filter forbids, so
// a launcher process is forked before the filter is installed: it holds one
// pipe and nothing else, and execs the successor when asked.
#ifndef REUSEPORT_BROKER_HARDENING_H_
#define REUSEPORT_BROKER_HARDENING_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace reuseport::broker {

enum class SeccompMode { kKill, kErrno, kOff };

struct HardeningOptions {
  bool drop_capabilities = true;
  SeccompMode seccomp = SeccompMode::kKill;
};

// Forks the successor launcher (before Harden). Returns the fd to write one
// byte to for each successor wanted, or -1. `argv` is the successor's.
int StartSuccessorLauncher(const std::vector<std::string>& argv);

// Drops capabilities and installs the filter. Errors are reasons to log; the
// broker still runs.
absl::Status DropCapabilities();
// The capabilities DropCapabilities keeps, as a mask of 1 << CAP_*: the one
// list, for whoever checks what the broker runs with (the tests).
uint64_t KeptCapabilityMask();
absl::Status InstallSyscallFilter(SeccompMode mode);

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_HARDENING_H_
