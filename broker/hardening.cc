#include "hardening.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_format.h"
#include "peer_identity.h"

namespace reuseport::broker {

namespace {

bool Kept(const std::vector<KeptCapability>& keep, int cap) {
  for (const KeptCapability& k : keep) {
    if (k.capability == cap) return true;
  }
  return false;
}

// Clears the effective and permitted sets, or keeps the listed capabilities
// in them (capset cannot add one the process does not have).
absl::Status SetCapabilities(const std::vector<KeptCapability>& keep) {
  struct __user_cap_header_struct header {};
  header.version = _LINUX_CAPABILITY_VERSION_3;
  struct __user_cap_data_struct data[2] = {};
  struct __user_cap_data_struct current[2] = {};
  if (syscall(SYS_capget, &header, current) != 0) return absl::ErrnoToStatus(errno, "capget");
  for (const KeptCapability& k : keep) {
    uint32_t bit = 1u << (k.capability % 32);
    if (current[k.capability / 32].permitted & bit) {
      data[k.capability / 32].effective |= bit;
      data[k.capability / 32].permitted |= bit;
    }
  }
  header.version = _LINUX_CAPABILITY_VERSION_3;
  if (syscall(SYS_capset, &header, data) != 0) return absl::ErrnoToStatus(errno, "capset");
  return absl::OkStatus();
}

// What the broker calls once serving, including through libc (malloc, stdio
// to stderr, syslog), and the newer calls glibc tries first and falls back
// from (so a kernel or runner that answers ENOSYS keeps working). Calls whose
// arguments are narrowed are added by InstallSyscallFilter.
constexpr const char* kAllowed[] = {
    // I/O and the event loop
    "read", "write", "readv", "writev", "close", "fcntl", "lseek", "poll", "ppoll", "epoll_wait", "epoll_pwait",
    "epoll_ctl",
    // sockets: the control socket, channels, group sockets, the notify and syslog sockets
    "accept", "accept4", "recvmsg", "recvmmsg", "recvfrom", "sendmsg", "sendmmsg", "sendto", "socketpair", "bind",
    "listen", "getsockopt", "setsockopt", "getsockname", "getpeername", "shutdown", "connect",
    // files, read only (open and openat are narrowed below): /proc, /etc/localtime
    "fstat", "newfstatat", "stat", "lstat", "statx", "faccessat", "faccessat2", "access", "readlink", "getdents64",
    // datagram rings: filled when made (the file itself is made by openat in the socket's directory only)
    "pwrite64",
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
                                                 "pipe", "pipe2", "open", "openat", "ioctl"};
#else
constexpr const char* kAllowedForSanitizers[] = {"getpid"};
#endif

// What a successor broker needs to start and then keep what it keeps:
// raise its fd limit, drop its bounding set, and the capabilities a broker
// may keep (CapabilitiesToKeep).
constexpr int kLauncherCapabilities[] = {CAP_NET_ADMIN, CAP_NET_BIND_SERVICE, CAP_SYS_PTRACE, CAP_SYS_RESOURCE,
                                         CAP_SETPCAP};

void LimitLauncherCapabilities() {
  if (geteuid() != 0) return;
  auto needed = [](int cap) {
    return std::find(std::begin(kLauncherCapabilities), std::end(kLauncherCapabilities), cap) !=
           std::end(kLauncherCapabilities);
  };
  for (int cap = 0; cap <= CAP_LAST_CAP; ++cap) {
    if (!needed(cap)) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
  }
  struct __user_cap_header_struct header {};
  header.version = _LINUX_CAPABILITY_VERSION_3;
  struct __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capget, &header, data) != 0) return;
  for (auto& d : data) d.effective = d.inheritable = 0;
  for (int i = 0; i < 2; ++i) {
    uint32_t keep = 0;
    for (int cap : kLauncherCapabilities) {
      if (cap / 32 == i) keep |= 1u << (cap % 32);
    }
    data[i].permitted &= keep;
  }
  header.version = _LINUX_CAPABILITY_VERSION_3;
  syscall(SYS_capset, &header, data);
}

struct scmp_arg_cmp Arg(unsigned int index, enum scmp_compare op, scmp_datum_t a, scmp_datum_t b = 0) {
  struct scmp_arg_cmp cmp;
  cmp.arg = index;
  cmp.op = op;
  cmp.datum_a = a;
  cmp.datum_b = b;
  return cmp;
}

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
  struct rlimit files {};
  int max_fd = getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < (1u << 20) ? static_cast<int>(files.rlim_cur) : 1 << 20;
  if (syscall(SYS_close_range, 3, p[0] - 1, 0) != 0 || syscall(SYS_close_range, p[0] + 1, ~0u, 0) != 0) {
    for (int fd = 3; fd < max_fd; ++fd) {
      if (fd != p[0]) close(fd);  // close_range is 5.9; this is what 3.2 has
    }
  }
  // Nothing effective while it waits, and nothing permitted beyond what a
  // successor needs to start: it gets these through exec, as uid 0 or (under
  // no_new_privs, e.g. systemd's NoNewPrivileges) from our permitted set.
  LimitLauncherCapabilities();
  prctl(PR_SET_DUMPABLE, 0);
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

std::vector<KeptCapability> CapabilitiesToKeep(bool policy_binds_privileged_ports) {
  std::vector<KeptCapability> keep = {
      {CAP_NET_ADMIN, "channel buffers above net.core.wmem_max (SO_SNDBUFFORCE), so a member's queue holds what --member_window and --udp_queue_bytes say"}};
  if (policy_binds_privileged_ports) {
    keep.push_back({CAP_NET_BIND_SERVICE, "the policy grants ports below 1024; the broker binds them for members"});
  }
  if (SocketNamespacesNeedProc()) {
    keep.push_back({CAP_SYS_PTRACE,
                    "this kernel has no SIOCGSKNS (4.9); a socket's network namespace is read from its owner's "
                    "/proc/PID/ns/net, which takes ptrace access to other users' processes"});
  }
  return keep;
}

uint64_t RaiseFdLimit() {
  struct rlimit rl {};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  uint64_t nr_open = 0;
  if (FILE* f = fopen("/proc/sys/fs/nr_open", "re")) {
    unsigned long long v = 0;
    if (fscanf(f, "%llu", &v) == 1) nr_open = v;
    fclose(f);
  }
  if (nr_open > rl.rlim_max) {
    struct rlimit raised = {nr_open, nr_open};
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) return nr_open;  // needs CAP_SYS_RESOURCE, which we have until the drop
  }
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  getrlimit(RLIMIT_NOFILE, &rl);
  return rl.rlim_cur;
}

absl::Status DropCapabilities(const std::vector<KeptCapability>& keep) {
  if (geteuid() != 0) return absl::OkStatus();  // nothing to drop
  // Dropping from the bounding set needs CAP_SETPCAP, which a supervisor
  // (systemd, a container) may already have taken: then only what is still
  // there is ours to drop, and that may be nothing.
  for (int cap = 0; cap <= CAP_LAST_CAP; ++cap) {
    if (Kept(keep, cap) || prctl(PR_CAPBSET_READ, cap, 0, 0, 0) != 1) continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL && errno != EPERM) {
      return absl::ErrnoToStatus(errno, absl::StrFormat("PR_CAPBSET_DROP %d", cap));
    }
  }
  return SetCapabilities(keep);
}

absl::Status InstallSyscallFilter(SeccompMode mode, const std::vector<int>& removable_directories) {
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
  // Narrowed calls. Files open read-only: the broker, though uid 0, writes
  // no file once serving.
  constexpr scmp_datum_t kWriting = O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND;
  struct Narrowed {
    const char* name;
    struct scmp_arg_cmp arg;
  };
  std::vector<Narrowed> narrowed = {
      {"openat", Arg(2, SCMP_CMP_MASKED_EQ, kWriting, 0)},
      {"open", Arg(1, SCMP_CMP_MASKED_EQ, kWriting, 0)},
      // glibc's syslog() makes its socket again when the log daemon restarts.
      {"socket", Arg(0, SCMP_CMP_EQ, AF_UNIX)},
  };
  // Queue sizes (FIONREAD = SIOCINQ, TIOCOUTQ = SIOCOUTQ), a socket's network
  // namespace, and what libc asks of stderr; the command is an int.
  for (scmp_datum_t request : {scmp_datum_t{FIONREAD}, scmp_datum_t{TIOCOUTQ}, scmp_datum_t{0x894C /* SIOCGSKNS */},
                               scmp_datum_t{TCGETS}, scmp_datum_t{FIONBIO}, scmp_datum_t{FIOCLEX},
                               scmp_datum_t{FIONCLEX}}) {
    narrowed.push_back({"ioctl", Arg(1, SCMP_CMP_MASKED_EQ, 0xffffffffu, request)});
  }
  // The control socket's path and the pid file are removed at exit, from
  // their directories only; UDP members' datagram rings are made (and
  // unlinked at once) in the first, the socket's.
  for (size_t i = 0; i < removable_directories.size(); ++i) {
    int directory = removable_directories[i];
    if (directory < 0) continue;
    narrowed.push_back({"unlinkat", Arg(0, SCMP_CMP_EQ, static_cast<scmp_datum_t>(directory))});
    if (i == 0) narrowed.push_back({"openat", Arg(0, SCMP_CMP_EQ, static_cast<scmp_datum_t>(directory))});
  }
  for (const Narrowed& n : narrowed) {
    if (std::find_if(std::begin(kAllowedForSanitizers), std::end(kAllowedForSanitizers),
                     [&](const char* name) { return strcmp(name, n.name) == 0; }) != std::end(kAllowedForSanitizers)) {
      continue;  // allowed whole in a sanitizer build
    }
    int nr = seccomp_syscall_resolve_name(n.name);
    if (nr == __NR_SCMP_ERROR) continue;
    if (int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, n.arg); rc != 0) {
      seccomp_release(ctx);
      return absl::InternalError(absl::StrFormat("seccomp_rule_add(%s): %s", n.name, strerror(-rc)));
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
