// reuseportd: gives unmodified programs SO_REUSEPORT on kernels that lack it.
// See `reuseportd --help` and README.md.
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "broker.h"
#include "hardening.h"
#include "log.h"
#include "pid_file.h"
#include "reuseport/protocol.h"
#include "ring_fault_guard.h"

// Flag types: a bad value fails at parse time, with the flag's name and usage.
namespace reuseport::broker {

bool AbslParseFlag(absl::string_view text, Severity* out, std::string* error) {
  if (ParseSeverity(text, out)) return true;
  *error = "must be error, warning, info or debug";
  return false;
}

std::string AbslUnparseFlag(Severity s) {
  switch (s) {
    case Severity::kError: return "error";
    case Severity::kWarning: return "warning";
    case Severity::kInfo: return "info";
    case Severity::kDebug: return "debug";
  }
  return "info";
}

bool AbslParseFlag(absl::string_view text, SeccompMode* out, std::string* error) {
  if (text == "kill") *out = SeccompMode::kKill;
  else if (text == "errno") *out = SeccompMode::kErrno;
  else if (text == "off") *out = SeccompMode::kOff;
  else {
    *error = "must be kill, errno or off";
    return false;
  }
  return true;
}

std::string AbslUnparseFlag(SeccompMode mode) {
  switch (mode) {
    case SeccompMode::kKill: return "kill";
    case SeccompMode::kErrno: return "errno";
    case SeccompMode::kOff: return "off";
  }
  return "kill";
}

// Permission bits written in octal, as chmod takes them.
struct FileMode {
  mode_t bits = 0;
};

bool AbslParseFlag(absl::string_view text, FileMode* out, std::string* error) {
  mode_t bits = 0;
  bool valid = !text.empty() && text.size() <= 4;
  for (char c : text) {
    if (c < '0' || c > '7') valid = false;
    bits = bits * 8 + static_cast<mode_t>(c - '0');
  }
  if (!valid || bits > 0777) {
    *error = "must be octal permissions such as 0666";
    return false;
  }
  out->bits = bits;
  return true;
}

std::string AbslUnparseFlag(FileMode mode) { return absl::StrFormat("%04o", mode.bits); }

}  // namespace reuseport::broker

using reuseport::broker::FileMode;
using reuseport::broker::SeccompMode;
using reuseport::broker::Severity;

ABSL_FLAG(std::string, socket, rp_default_socket(),
          "Path of the control socket members connect to (" RP_DEFAULT_SOCKET_VAR_RUN " where /run does not exist).");
ABSL_FLAG(FileMode, socket_mode, FileMode{0666},
          "Permissions of the control socket (octal); every request is checked on its own.");
ABSL_FLAG(Severity, log_level, Severity::kInfo, "error, warning, info or debug.");
ABSL_FLAG(bool, syslog, false,
          "Log to syslog (daemon facility, /dev/log) instead of stderr; lines /dev/log does not take go to stderr.");
ABSL_FLAG(int, member_window, 128, "TCP connections queued for one member before it counts as full and others get its share.");
ABSL_FLAG(absl::Duration, stall, absl::Milliseconds(200),
          "A TCP member that consumes none of its queued connections for this long (stopped, busy, at its fd "
          "limit) has them handed to the others; 0 turns this off.");
ABSL_FLAG(absl::Duration, join_wait, absl::Milliseconds(500),
          "A join that finds no group waits this long for a program of the same uid that may be creating it "
          "(copies of a server started at once); the wait ends as soon as the group exists.");
ABSL_FLAG(int, udp_queue_bytes, 4 << 20, "UDP bytes queued for one member before its datagrams are dropped and counted.");
ABSL_FLAG(bool, udp_rings, true,
          "UDP members receive through a shared-memory ring of --udp_queue_bytes in the control socket's directory "
          "(no system call per datagram); false: as records on their channel.");
#ifndef REUSEPORT_DEFAULT_POLICY
#define REUSEPORT_DEFAULT_POLICY "/etc/reuseport/policy.conf"
#endif

ABSL_FLAG(std::string, policy, REUSEPORT_DEFAULT_POLICY,
          "Policy file (allow and limit rules). A missing file at the default path means built-in defaults.");
ABSL_FLAG(bool, check_config, false, "Validate the policy file, print what it says, and exit (0 if valid).");
ABSL_FLAG(bool, takeover, false,
          "Take the control socket over from a running reuseportd (zero-downtime restart or upgrade); "
          "SIGHUP makes a running broker start such a successor of itself.");
ABSL_FLAG(SeccompMode, seccomp, SeccompMode::kKill,
          "After start, allow only the system calls the broker uses: kill (others kill it), errno (others fail "
          "with EPERM) or off. Needs Linux 3.5; older kernels run without.");
ABSL_FLAG(bool, drop_capabilities, true,
          "After start, keep only CAP_NET_ADMIN, and CAP_NET_BIND_SERVICE / CAP_SYS_PTRACE where the policy / "
          "kernel needs them (each is logged with its reason).");
ABSL_FLAG(std::string, selftest_forbidden_syscall, "",
          "For tests: once hardened, attempt a call the filter forbids and report what happened: execve, "
          "open_for_writing, inet_socket, unlink_elsewhere or tty_ioctl.");
ABSL_FLAG(std::string, metrics_address, "",
          "Serve GET /metrics (Prometheus text) over HTTP on HOST:PORT, e.g. 127.0.0.1:9135; empty: off.");
ABSL_FLAG(int, ready_fd, -1, "Write READY=1 to this fd and close it once serving (for supervisors and tests).");
ABSL_FLAG(std::string, pidfile, "",
          "Write the broker's pid to this file once it serves (for init scripts); a successor started by SIGHUP "
          "writes its own. Removed at exit unless a successor took over.");

namespace {

reuseport::broker::Broker* g_broker = nullptr;
int g_filter_installed = 0;

}  // namespace

// LeakSanitizer's check at exit stops the world with ptrace and a tracer
// thread, which the system call filter forbids; in sanitizer builds a broker
// that installed the filter skips that check (LSan asks this function).
extern "C" int __lsan_is_turned_off() { return g_filter_installed; }

namespace {

void OnSignal(int) {
  if (g_broker != nullptr) g_broker->Stop();
}

void OnHangup(int) {
  if (g_broker != nullptr) g_broker->RequestRestart();
}

constexpr char kUsage[] =
    "reuseportd - SO_REUSEPORT for programs on kernels that lack it\n"
    "\n"
    "SYNOPSIS\n"
    "  reuseportd [--socket PATH] [--policy FILE] [--log_level LEVEL] [--syslog]\n"
    "             [--member_window N] [--stall 200ms] [--join_wait 500ms] [--udp_queue_bytes N]\n"
    "             [--ready_fd FD] [--pidfile FILE]\n"
    "  reuseportd --check_config [--policy FILE]\n"
    "  reuseportd --takeover ...     (replace a running broker without refusing anything)\n"
    "\n"
    "DESCRIPTION\n"
    "  Owns the real listening socket of each group of sockets that share an address and\n"
    "  port, accepts connections and receives datagrams on it, and hands each to one member\n"
    "  chosen by a hash of its 4-tuple. Programs become members through libreuseport.so\n"
    "  (see reuseport-run). Sockets share as on Linux 3.9+: same uid, same address and port;\n"
    "  a specific address beats a wildcard; IPv4 sockets beat dual-stack IPv6 ones.\n"
    "\n"
    "POLICY\n"
    "  Ports below 1024 are shared only with processes that hold CAP_NET_BIND_SERVICE,\n"
    "  unless the policy file allows a uid or gid (allow uid=www-data port=80,443 protocol=tcp);\n"
    "  limit lines bound the groups, members, links and queued connections of each uid.\n"
    "\n"
    "RESTARTS\n"
    "  Members keep their group sockets and channels when the broker goes; they rejoin\n"
    "  the next broker on the same socket path within a second, and connections wait in\n"
    "  the kernel's backlog meanwhile. --takeover (or SIGHUP, which starts a successor of\n"
    "  the same binary) moves the socket path to the new broker before the old one exits.\n"
    "\n"
    "EXIT STATUS\n"
    "  0 after SIGTERM or SIGINT; 1 when it cannot start (the reason is logged).\n";

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  std::vector<std::string> original_argv(argv, argv + argc);
  absl::ParseCommandLine(argc, argv);
  using namespace reuseport::broker;

  SetLogSeverity(absl::GetFlag(FLAGS_log_level));
  if (absl::GetFlag(FLAGS_syslog)) EnableSyslog("reuseportd");

  BrokerOptions options;
  options.control.socket_path = absl::GetFlag(FLAGS_socket);
  options.control.socket_mode = absl::GetFlag(FLAGS_socket_mode).bits;
  options.dispatch.member_window = absl::GetFlag(FLAGS_member_window);
  absl::Duration stall = absl::GetFlag(FLAGS_stall);
  if (stall < absl::ZeroDuration() || stall > absl::Hours(1)) {
    fprintf(stderr, "reuseportd: --stall must be from 0 to 1h\n");
    return 2;
  }
  options.dispatch.stall_ms = static_cast<int>(absl::ToInt64Milliseconds(stall));
  options.dispatch.udp_channel_bytes = absl::GetFlag(FLAGS_udp_queue_bytes);
  options.control.udp_rings = absl::GetFlag(FLAGS_udp_rings);
  if (options.dispatch.member_window < 1 || options.dispatch.udp_channel_bytes < 65536 + 1024) {
    fprintf(stderr, "reuseportd: --member_window must be >= 1 and --udp_queue_bytes >= 66560\n");
    return 2;
  }
  absl::Duration join_wait = absl::GetFlag(FLAGS_join_wait);
  if (join_wait < absl::Milliseconds(1) || join_wait > absl::Minutes(1)) {
    fprintf(stderr, "reuseportd: --join_wait must be from 1ms to 1m\n");
    return 2;
  }
  options.control.join_wait_ms = absl::ToInt64Milliseconds(join_wait);
  options.ready_fd = absl::GetFlag(FLAGS_ready_fd);
  options.control.takeover = absl::GetFlag(FLAGS_takeover);
  options.metrics_address = absl::GetFlag(FLAGS_metrics_address);
  options.argv = original_argv;

  std::string policy_path = absl::GetFlag(FLAGS_policy);
  bool default_path = policy_path == REUSEPORT_DEFAULT_POLICY;
  if (!policy_path.empty() && (!default_path || access(policy_path.c_str(), F_OK) == 0)) {
    absl::StatusOr<Policy> policy = Policy::Load(policy_path);
    if (!policy.ok()) {
      fprintf(stderr, "reuseportd: %s\n", std::string(policy.status().message()).c_str());
      return absl::GetFlag(FLAGS_check_config) ? 1 : 2;
    }
    options.control.policy = std::move(*policy);
  } else if (absl::GetFlag(FLAGS_check_config)) {
    printf("reuseportd: no policy file at %s; built-in defaults apply\n", policy_path.c_str());
  }
  if (absl::GetFlag(FLAGS_check_config)) {
    printf("reuseportd: %s: %s\n", policy_path.c_str(), options.control.policy.Describe().c_str());
    return 0;
  }

  signal(SIGPIPE, SIG_IGN);
  InstallRingFaultHandler();  // before any member's ring is touched
  const std::vector<AllowRule> options_policy_rules = options.control.policy.rules();
  Broker broker(std::move(options));
  g_broker = &broker;
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  struct sigaction hup {};
  hup.sa_handler = OnHangup;
  sigaction(SIGHUP, &hup, nullptr);
  signal(SIGCHLD, SIG_IGN);  // successors started on SIGHUP are not waited for

  const SeccompMode seccomp = absl::GetFlag(FLAGS_seccomp);

  if (absl::Status s = broker.Start(); !s.ok()) {
    Log(Severity::kError, "cannot start: %s", s.ToString());
    return 1;
  }
  // Before the system call filter, which has no fchmod.
  const std::string pidfile = absl::GetFlag(FLAGS_pidfile);
  PidFile pid_file;
  if (!pidfile.empty()) {
    if (absl::Status s = pid_file.Write(pidfile, getpid()); !s.ok()) {
      Log(Severity::kError, "cannot start: %s", s.message());
      return 1;
    }
  }
  // Hardening comes after start (the socket path, the flow key file) and
  // before the first request.
  bool drop = absl::GetFlag(FLAGS_drop_capabilities);
  if (seccomp != SeccompMode::kOff || drop) broker.SetSuccessorLauncher(StartSuccessorLauncher(broker.SuccessorArgv()));
  if (drop) {
    bool binds_privileged = false;
    for (const AllowRule& rule : options_policy_rules) binds_privileged |= rule.first_port < Policy::kFirstUnprivilegedPort;
    std::vector<KeptCapability> keep = CapabilitiesToKeep(binds_privileged);
    if (absl::Status s = DropCapabilities(keep); !s.ok()) {
      Log(Severity::kWarning, "keeping capabilities: %s", s.ToString());
    } else if (geteuid() == 0) {
      for (const KeptCapability& k : keep) Log(Severity::kInfo, "keeping capability %d: %s", k.capability, k.reason);
    }
  }
  if (absl::Status s = InstallSyscallFilter(seccomp, {broker.SocketDirectoryFd(), pid_file.directory_fd()}); !s.ok()) {
    Log(Severity::kWarning, "%s; running without a system call filter", s.message());
  } else if (seccomp != SeccompMode::kOff) {
    g_filter_installed = 1;
    Log(Severity::kInfo, "system call filter installed (%s)", AbslUnparseFlag(seccomp));
  }
  broker.NotifyReady();
  if (std::string call = absl::GetFlag(FLAGS_selftest_forbidden_syscall); !call.empty()) {
    int result = -1;
    if (call == "execve") {
      char* args[] = {const_cast<char*>("/bin/true"), nullptr};
      result = execv("/bin/true", args);
    } else if (call == "open_for_writing") {
      result = open("/proc/self/comm", O_WRONLY | O_CLOEXEC);
    } else if (call == "inet_socket") {
      result = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    } else if (call == "unlink_elsewhere") {
      result = unlinkat(AT_FDCWD, "/nonexistent-reuseport-selftest", 0);
    } else if (call == "tty_ioctl") {
      int pgrp = 0;
      result = ioctl(STDERR_FILENO, TIOCGPGRP, &pgrp);
    } else {
      fprintf(stderr, "reuseportd: unknown --selftest_forbidden_syscall %s\n", call.c_str());
      return 2;
    }
    Log(Severity::kError, "selftest: %s was not stopped (result %d: %s)", call, result, strerror(errno));
    return 3;
  }
  broker.Run();
  g_broker = nullptr;
  if (!broker.handed_over()) pid_file.RemoveIfOurs(getpid());
  return 0;
}
