// After start the broker keeps only what it needs (docs/operations.md lists
// each with its reason).
//
// Capabilities, each only where it is needed:
//   CAP_NET_ADMIN         channel buffers above net.core.wmem_max (SO_SNDBUFFORCE)
//   CAP_NET_BIND_SERVICE  only if the policy grants a port below 1024: the
//                         broker binds it for the member
//   CAP_SYS_PTRACE        only on kernels 3.8-4.8 without SIOCGSKNS: reading
//                         another user's /proc/PID/ns/net to learn a socket's
//                         network namespace
// Everything else leaves the bounding, permitted and effective sets.
//
// System calls: a libseccomp allow-list of what the event loop, the control
// protocol and libc use, with arguments narrowed where a call could reach
// beyond the broker's own fds: files open read-only, sockets only AF_UNIX
// (syslog's reconnect), ioctl only the queue and namespace queries, a file
// removed only in the socket's directory. Anything else kills the broker (or
// fails with EPERM with --seccomp=errno). Seccomp filters arrived in Linux
// 3.5; on older kernels the broker says so and runs without.
//
// SIGHUP starts a successor with fork and exec, which the filter forbids (and
// a filter would follow the successor through exec), so a launcher process is
// forked first: it keeps one pipe and no capability in its effective or
// permitted sets. It stays uid 0 with a full bounding set, which is what lets
// the successor it execs start with a fresh broker's capabilities.
#ifndef REUSEPORT_BROKER_HARDENING_H_
#define REUSEPORT_BROKER_HARDENING_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace reuseport::broker {

enum class SeccompMode { kKill, kErrno, kOff };

// Forks the successor launcher (before the rest). Returns the fd to write one
// byte to for each successor wanted, or -1. `argv` is the successor's.
int StartSuccessorLauncher(const std::vector<std::string>& argv);

// A capability kept after start, and why.
struct KeptCapability {
  int capability;
  const char* reason;
};

// What this broker needs on this kernel with this policy.
std::vector<KeptCapability> CapabilitiesToKeep(bool policy_binds_privileged_ports);

// Raises RLIMIT_NOFILE as far as the kernel allows (fs.nr_open), while the
// broker still may: every member costs it fds, and every connection in a
// member's channel is an fd in flight that the kernel counts against it.
// Returns the limit now in force.
uint64_t RaiseFdLimit();

// Drops every capability but `keep`. Errors are reasons to log; the broker
// still runs.
absl::Status DropCapabilities(const std::vector<KeptCapability>& keep);

// `removable_directories` are the directory fds the broker may remove files
// from once filtered (its socket's and its pid file's, at exit); in the first
// it may also create files (UDP members' datagram rings). -1 entries are
// skipped.
absl::Status InstallSyscallFilter(SeccompMode mode, const std::vector<int>& removable_directories);

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_HARDENING_H_
