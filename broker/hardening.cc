#include "hardening.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <seccomp.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/strings/str_format.h"

namespace reuseport::broker {

namespace {

constexpr int kKeptCapabilities[] = {CAP_NET_ADMIN, CAP_NET_BIND_SERVICE, CAP_SYS_PTRACE};

bool Kept(int cap) {
  for (int k : kKeptCapabilities) {
    if (k == cap) return true;
  }
  return false;
}

// What the broker calls once serving, including through libc (malloc, stdio
// to stderr, syslog), and the newer calls glibc tries first and falls back
// from (so a kernel or runner that answers ENOSYS keeps working).
constexpr const char* kAllowed[] = {
    // I/O and the event loop
    "read", "write", "readv", "writev", "close", "fcntl", "ioctl", "lseek", "poll", "ppoll", "epoll_wait",
    "epoll_pwait", "epoll_ctl",
    // sockets: the control socket, channels, group sockets, the notify socket
    "accept", "accept4", "recvmsg", "recvmmsg", "recvfrom", "sendmsg", "sendmmsg", "sendto", "socketpair", "bind",
    "listen", "getsockopt", "setsockopt", "getsockname", "getpeername", "shutdown", "connect",
    // files: /proc, the socket path, the flow key
    "openat", "open", "fstat", "newfstatat", "stat", "lstat", "statx", "unlink", "rename", "faccessat", "faccessat2",
    "access", "readlink", "getdents64",
    // memory
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise",
    // signals, time, identity, exit
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "restart_syscall", "clock_gettime",
    "clock_nanosleep", "nanosleep", "gettimeofday", "time", "getpid", "gettid", "getppid", "getuid", "geteuid",
    "getgid", "getegid", "getgroups", "uname", "exit", "exit_group", "tgkill", "futex", "sched_yield", "getrandom",
    "prlimit64", "getrlimit", "rseq", "set_robust_list",
};

// Sanitizer builds only: the runtimes read /proc and query the CPUs while
// reporting; production builds never allow these. (LeakSanitizer's exit check
// needs ptrace, so main.cc turns it off once the filter is in.)
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr const char* kAllowedForSanitizers[] = {"sched_getaffinity", "prctl", "getdents64", "readlink", "kill",
                                                 "pipe", "pipe2"};
#else
constexpr const char* kAllowedForSanitizers[] = {"getpid"};
#endif

}  // namespace

int StartSuccessorLauncher(const std::vector<std::string>& argv) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return -1;
  pid_t child = fork();
  if (child < 0) {
    close(p[0]);
    close(p[1]);
    return -1;
  }
  if (child > 0) {
    close(p[0]);
    return p[1];
  }
  // The launcher: keep only the pipe, wait for requests, go when the broker goes.
  close(p[1]);
  for (int fd = 3; fd < 1024; ++fd) {
    if (fd != p[0]) close(fd);
  }
  prctl(PR_SET_NAME, "reuseportd-exec");
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  signal(SIGCHLD, SIG_IGN);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  char byte;
  while (read(p[0], &byte, 1) == 1) {
    pid_t successor = fork();
    if (successor == 0) {
      close(p[0]);
      prctl(PR_SET_PDEATHSIG, 0);
      // A new session: the successor outlives both the old broker and us.
      setsid();
      execv("/proc/self/exe", args.data());
      _exit(127);
    }
  }
  _exit(0);
}

uint64_t KeptCapabilityMask() {
  uint64_t mask = 0;
  for (int cap : kKeptCapabilities) mask |= uint64_t{1} << cap;
  return mask;
}

absl::Status DropCapabilities() {
  if (geteuid() != 0) return absl::OkStatus();  // nothing to drop
  // Dropping from the bounding set needs CAP_SETPCAP, which a supervisor
  // (systemd, a container) may already have taken: then only what is still
  // there is ours to drop, and that may be nothing.
  for (int cap = 0; cap <= CAP_LAST_CAP; ++cap) {
    if (Kept(cap) || prctl(PR_CAPBSET_READ, cap, 0, 0, 0) != 1) continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL && errno != EPERM) {
      return absl::ErrnoToStatus(errno, absl::StrFormat("PR_CAPBSET_DROP %d", cap));
    }
  }
  struct __user_cap_header_struct header {};
  header.version = _LINUX_CAPABILITY_VERSION_3;
  struct __user_cap_data_struct data[2] = {};
  struct __user_cap_data_struct current[2] = {};
  if (syscall(SYS_capget, &header, current) != 0) return absl::ErrnoToStatus(errno, "capget");
  for (int cap : kKeptCapabilities) {
    uint32_t bit = 1u << (cap % 32);
    // Keep a capability only if we have it: capset cannot add one.
    if (current[cap / 32].permitted & bit) {
      data[cap / 32].effective |= bit;
      data[cap / 32].permitted |= bit;
    }
  }
  header.version = _LINUX_CAPABILITY_VERSION_3;
  if (syscall(SYS_capset, &header, data) != 0) return absl::ErrnoToStatus(errno, "capset");
  return absl::OkStatus();
}

absl::Status InstallSyscallFilter(SeccompMode mode) {
  if (mode == SeccompMode::kOff) return absl::OkStatus();
  uint32_t deny = mode == SeccompMode::kErrno ? SCMP_ACT_ERRNO(EPERM) : SCMP_ACT_KILL_PROCESS;
  scmp_filter_ctx ctx = seccomp_init(deny);
  if (ctx == nullptr && mode == SeccompMode::kKill) {
    // Killing the whole process needs Linux 4.14; killing the thread is the
    // same for the broker, which has one.
    ctx = seccomp_init(SCMP_ACT_KILL);
  }
  if (ctx == nullptr) return absl::InternalError("seccomp_init failed");
  std::vector<const char*> names(std::begin(kAllowed), std::end(kAllowed));
  names.insert(names.end(), std::begin(kAllowedForSanitizers), std::end(kAllowedForSanitizers));
  for (const char* name : names) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue;  // not on this architecture
    if (int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0); rc != 0) {
      seccomp_release(ctx);
      return absl::InternalError(absl::StrFormat("seccomp_rule_add(%s): %s", name, strerror(-rc)));
    }
  }
  int rc = seccomp_load(ctx);
  seccomp_release(ctx);
  if (rc != 0) {
    // The kernel refused it: before 3.5 there are no seccomp filters.
    return absl::UnavailableError(absl::StrFormat(
        "the kernel refused the seccomp filter (%s; filters and no_new_privs need Linux 3.5)", strerror(-rc)));
  }
  return absl::OkStatus();
}

}  // namespace reuseport::broker
