// The broker after start: capabilities dropped, a system call allow-list
// installed where the kernel has seccomp filters (3.5), a forbidden call
// kills it, and a full workload (TCP, UDP, status, metrics, a policy bind, a
// SIGHUP restart through the launcher) never trips the filter.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <string_view>
#include <iostream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "hardening.h"
#include "host_features.h"
#include "load_client.h"
#include "member_paths.h"
#include "readiness.h"
#include "reuseport_fixture.h"
#include "status_client.h"

namespace reuseport::testing {
namespace {

class HardeningTest : public ::testing::Test {
 protected:
  TempDir dir_ = MakeTestDir();
};

absl::StatusOr<int> RunBroker(const std::string& kernel, const std::string& socket, std::string* log,
                              const std::string& forbidden = "execve") {
  SubprocessOptions p;
  p.argv = {BrokerPath(), "--socket", socket, "--selftest_forbidden_syscall=" + forbidden};
  UnderLegacyKernel(&p, kernel);
  absl::StatusOr<Subprocess> s = Subprocess::Start(p);
  if (!s.ok()) return s.status();
  absl::StatusOr<int> status = s->Wait(absl::Seconds(20));
  *log = s->ReadStderr();
  return status;
}

TEST_F(HardeningTest, ForbiddenCallKillsTheBrokerWhereSeccompExists) {
  std::string log;
  absl::StatusOr<int> status = RunBroker("3.5", dir_.path() + "/a.sock", &log);
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGSYS) << DescribeWaitStatus(*status) << "\n" << log;
  EXPECT_NE(log.find("system call filter installed"), std::string::npos) << log;
}

// The filter narrows arguments where a call could reach beyond the broker's
// own fds: though uid 0, it opens nothing for writing, makes no socket but a
// Unix one, removes no file outside its socket's directory, and asks only
// queue and namespace questions of ioctl.
TEST_F(HardeningTest, NarrowedCallsKillTheBrokerWithOtherArguments) {
  std::vector<const char*> calls = {"inet_socket", "unlink_elsewhere"};
  // A sanitized broker allows open, openat and ioctl whole (its runtime uses them).
  if (std::string_view(REUSEPORT_TEST_BROKER_SANITIZER).empty()) {
    calls.insert(calls.end(), {"open_for_writing", "tty_ioctl"});
  }
  for (const char* call : calls) {
    std::string log;
    absl::StatusOr<int> status = RunBroker("3.5", absl::StrCat(dir_.path(), "/", call, ".sock"), &log, call);
    ASSERT_TRUE(status.ok());
    EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGSYS) << call << ": " << DescribeWaitStatus(*status)
                                                                     << "\n" << log;
  }
}

TEST_F(HardeningTest, OnLinux32TheBrokerSaysItRunsWithoutAFilter) {
  std::string log;
  absl::StatusOr<int> status = RunBroker("3.2", dir_.path() + "/b.sock", &log);
  ASSERT_TRUE(status.ok());
  EXPECT_NE(log.find("filters and no_new_privs need Linux 3.5"), std::string::npos) << log;
  EXPECT_NE(log.find("running without a system call filter"), std::string::npos) << log;
}

// A capability set of a process, from /proc/PID/status ("CapEff:" etc).
uint64_t CapabilitySet(const std::string& status, const char* name) {
  size_t at = status.find(name);
  EXPECT_NE(at, std::string::npos) << name;
  return at == std::string::npos ? 0 : std::stoull(status.substr(at + strlen(name)), nullptr, 16);
}

// The capabilities a broker said it keeps ("keeping capability N: why").
uint64_t KeptCapabilities(const std::string& log) {
  uint64_t kept = 0;
  for (size_t at = log.find("keeping capability "); at != std::string::npos;
       at = log.find("keeping capability ", at + 1)) {
    kept |= 1ull << std::stoi(log.substr(at + strlen("keeping capability ")));
  }
  return kept;
}

// The successor launcher the broker forked, once it has named itself (and
// so set itself up: the name comes last).
// The children of `parent`: /proc/PID/task/PID/children where the kernel has
// it (3.5 on, and only with CONFIG_PROC_CHILDREN), else every process's
// parent from /proc/N/stat.
std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> out;
  absl::StatusOr<std::string> children = ReadFile(absl::StrCat("/proc/", parent, "/task/", parent, "/children"));
  if (children.ok()) {
    std::istringstream in(*children);
    for (pid_t child; in >> child;) out.push_back(child);
    return out;
  }
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return out;
  while (struct dirent* e = readdir(proc)) {
    pid_t pid = static_cast<pid_t>(atoi(e->d_name));
    if (pid <= 0) continue;
    absl::StatusOr<std::string> stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
    if (!stat.ok()) continue;
    size_t end = stat->rfind(')');  // the command may hold spaces and parentheses
    if (end == std::string::npos) continue;
    std::istringstream rest(stat->substr(end + 1));
    std::string state;
    pid_t ppid = 0;
    if (rest >> state >> ppid && ppid == parent) out.push_back(pid);
  }
  closedir(proc);
  return out;
}

pid_t LauncherOf(pid_t broker) {
  for (int attempt = 0; attempt < 500; ++attempt) {
    for (pid_t child : ChildrenOf(broker)) {
      absl::StatusOr<std::string> comm = ReadFile(absl::StrCat("/proc/", child, "/comm"));
      if (comm.ok() && comm->rfind("reuseportd-exec", 0) == 0) return child;
    }
    usleep(10000);
  }
  return -1;
}

// Each capability the broker keeps is one it needs here and says why; the
// launcher it forked for SIGHUP holds none it can use.
TEST_F(HardeningTest, CapabilitiesAreDroppedAfterStart) {
  absl::StatusOr<std::string> own = ReadFile("/proc/self/status");
  ASSERT_TRUE(own.ok());
  uint64_t ours = CapabilitySet(*own, "CapBnd:");
  // Bits above the kernel's last capability name nothing and cannot be
  // dropped (PR_CAPBSET_DROP says EINVAL); Linux before 3.5 still shows them
  // set in CapBnd (its full set was ~0), later ones clear.
  uint64_t valid = ~0ull;
  if (absl::StatusOr<std::string> last = ReadFile("/proc/sys/kernel/cap_last_cap"); last.ok()) {
    int last_cap = std::stoi(*last);
    if (last_cap >= 0 && last_cap < 63) valid = (1ull << (last_cap + 1)) - 1;
  }
  for (bool privileged_rule : {false, true}) {
    SCOPED_TRACE(privileged_rule ? "policy grants port 83" : "no privileged rule");
    std::string dir = absl::StrCat(dir_.path(), "/", privileged_rule ? "granting" : "plain");
    ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
    BrokerOptions options;
    if (privileged_rule) {
      std::string policy = dir + "/policy.conf";
      std::ofstream(policy) << "allow uid=nobody port=83 protocol=tcp\n";
      options.extra_flags = {"--policy", policy};
    }
    absl::StatusOr<BrokerProcess> broker = BrokerProcess::Start(dir, options);
    ASSERT_TRUE(broker.ok()) << broker.status();
    absl::StatusOr<std::string> log = ReadFile(dir + "/reuseportd.log");
    ASSERT_TRUE(log.ok());
    uint64_t kept = KeptCapabilities(*log);
    EXPECT_TRUE(kept & (1ull << 12)) << "CAP_NET_ADMIN, for channel buffers\n" << *log;
    EXPECT_EQ((kept >> 10) & 1, privileged_rule ? 1u : 0u) << "CAP_NET_BIND_SERVICE only for a policy bind\n" << *log;
    EXPECT_EQ(kept & ~((1ull << 10) | (1ull << 12) | (1ull << 19)), 0u) << *log;
    absl::StatusOr<std::string> status = ReadFile(absl::StrCat("/proc/", broker->process().pid(), "/status"));
    ASSERT_TRUE(status.ok());
    // What this test's own bounding set lacks, the broker never had.
    for (const char* set : {"CapEff:", "CapPrm:", "CapBnd:"}) EXPECT_EQ(CapabilitySet(*status, set) & valid, kept & ours & valid) << set;

    pid_t launcher = LauncherOf(broker->process().pid());
    ASSERT_GT(launcher, 0) << "no reuseportd-exec child within 5 s";
    absl::StatusOr<std::string> launcher_status = ReadFile(absl::StrCat("/proc/", launcher, "/status"));
    ASSERT_TRUE(launcher_status.ok());
    // CAP_NET_BIND_SERVICE, CAP_NET_ADMIN, CAP_SYS_PTRACE, CAP_SYS_RESOURCE, CAP_SETPCAP: a successor's start.
    uint64_t successor_needs = (1ull << 10) | (1ull << 12) | (1ull << 19) | (1ull << 24) | (1ull << 8);
    EXPECT_EQ(CapabilitySet(*launcher_status, "CapEff:"), 0u) << "the launcher can use nothing while it waits";
    EXPECT_EQ(CapabilitySet(*launcher_status, "CapPrm:") & ~successor_needs, 0u);
    EXPECT_EQ(CapabilitySet(*launcher_status, "CapBnd:") & valid & ~successor_needs, 0u);
  }
}

// Regression: with --syslog and no syslog daemon (/dev/log missing: a chroot,
// a container, early boot), glibc's syslog() made a new socket for every line
// after the filter was in, and the filter killed the broker with SIGSYS at its
// first log line after start. Lines /dev/log does not take now go to stderr.
TEST_F(HardeningTest, SyslogWithoutASyslogDaemonNeverTripsTheFilter) {
  SubprocessOptions p;
  std::string socket = dir_.path() + "/syslog.sock";
  int ready[2];
  ASSERT_EQ(pipe2(ready, O_CLOEXEC), 0);
  p.argv = {BrokerPath(), "--socket", socket, "--ready_fd", "3", "--syslog", "--log_level", "debug"};
  p.inherited_fds = {{ready[1], 3}};
  UnderLegacyKernel(&p, "3.5");
  absl::StatusOr<Subprocess> broker = Subprocess::Start(p);
  close(ready[1]);
  ASSERT_TRUE(broker.ok());
  char buf[16] = {};
  ASSERT_GT(read(ready[0], buf, sizeof(buf)), 0);
  close(ready[0]);

  // Lines logged after the filter: two members joining, status requests.
  std::vector<MemberOptions> tcp;
  for (int i = 0; i < 2; ++i) {
    MemberOptions m;
    m.process.argv = {TcpMemberPath()};
    WithShim(&m.process, socket);
    UnderLegacyKernel(&m.process);
    m.id = absl::StrCat("t", i);
    m.dir = dir_.path();
    tcp.push_back(std::move(m));
  }
  absl::StatusOr<std::vector<MemberProcess>> t = StartMemberGroup(std::move(tcp));
  ASSERT_TRUE(t.ok()) << t.status() << "\n" << broker->ReadStderr();
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<std::string> text = ctl::FetchStatus(socket, RP_STATUS_TEXT);
    ASSERT_TRUE(text.ok()) << text.status() << "\n" << broker->ReadStderr();
  }
  EXPECT_TRUE(broker->Running()) << DescribeWaitStatus(broker->wait_status().value_or(0)) << "\n"
                                 << broker->ReadStderr();
  std::string log = broker->ReadStderr();
  if (access("/dev/log", F_OK) != 0) {
    EXPECT_NE(log.find("joined group"), std::string::npos) << "lines syslog cannot take go to stderr:\n" << log;
  }
  ASSERT_TRUE(broker->Signal(SIGTERM).ok());
  absl::StatusOr<int> status = broker->Wait(absl::Seconds(10));
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << DescribeWaitStatus(*status) << "\n" << log;
}

TEST_F(HardeningTest, FullWorkloadUnderTheFilterNeverTripsIt) {
  REUSEPORT_SKIP_IF_UNAVAILABLE(RootUnavailable("a member runs as nobody on a port below 1024"));
  const uint16_t granted = FreePrivilegedPort();
  if (granted == 0) GTEST_SKIP() << "every port from 512 to 1023 is in use on this host";
  std::string policy = dir_.path() + "/policy.conf";
  std::ofstream(policy) << "allow uid=nobody port=" << granted << " protocol=tcp\n";
  BrokerOptions options;
  options.extra_flags = {"--policy", policy};
  // Under 3.5 the filter is installed (under 3.2 it cannot be).
  absl::StatusOr<BrokerProcess> broker = BrokerProcess::Start(dir_.path(), options);
  ASSERT_TRUE(broker.ok()) << broker.status();
  (void)broker;
  SubprocessOptions p;
  std::string socket = dir_.path() + "/hardened.sock";
  int ready[2];
  ASSERT_EQ(pipe2(ready, O_CLOEXEC), 0);
  p.argv = {BrokerPath(), "--socket", socket, "--ready_fd", "3", "--policy", policy};
  p.inherited_fds = {{ready[1], 3}};
  p.stderr_path = dir_.path() + "/hardened.log";
  UnderLegacyKernel(&p, "3.5");
  absl::StatusOr<Subprocess> hardened = Subprocess::Start(p);
  close(ready[1]);
  ASSERT_TRUE(hardened.ok());
  char buf[16] = {};
  ASSERT_GT(read(ready[0], buf, sizeof(buf)), 0);
  close(ready[0]);

  auto member = [&](std::vector<std::string> argv, const std::string& id) {
    MemberOptions m;
    m.process.argv = std::move(argv);
    WithShim(&m.process, socket);
    UnderLegacyKernel(&m.process);
    m.id = id;
    m.dir = dir_.path();
    return m;
  };
  std::vector<MemberOptions> tcp;
  for (int i = 0; i < 2; ++i) tcp.push_back(member({TcpMemberPath()}, absl::StrCat("t", i)));
  absl::StatusOr<std::vector<MemberProcess>> t = StartMemberGroup(std::move(tcp));
  ASSERT_TRUE(t.ok()) << t.status() << "\n" << hardened->ReadStderr();
  std::vector<MemberOptions> udp;
  for (int i = 0; i < 2; ++i) udp.push_back(member({UdpMemberPath()}, absl::StrCat("u", i)));
  absl::StatusOr<std::vector<MemberProcess>> u = StartMemberGroup(std::move(udp));
  ASSERT_TRUE(u.ok()) << u.status();
  MemberOptions nobody = member({TcpMemberPath(), "--reuseaddr", "--port", absl::StrCat(granted)}, "nobody");
  nobody.process.uid = 65534;
  nobody.process.gid = 65534;
  absl::StatusOr<MemberProcess> n = StartMember(nobody);
  ASSERT_TRUE(n.ok()) << n.status() << "\n" << hardened->ReadStderr();

  TcpLoadOptions load;
  load.port = (*t)[0].port;
  load.connections = 1000;
  EXPECT_EQ(RunTcpLoad(load).successes, 1000);
  UdpFlowOptions flows;
  flows.port = (*u)[0].port;
  flows.flows = 200;
  UdpFlowResult udp_result = RunUdpFlows(flows);
  EXPECT_EQ(udp_result.lost, 0) << udp_result.Summary();
  for (const char* args : {"status", "metrics"}) {
    SubprocessOptions ctl;
    ctl.argv = {CtlPath(), "--socket", socket, args};
    absl::StatusOr<Subprocess> c = Subprocess::Start(ctl);
    ASSERT_TRUE(c.ok());
    absl::StatusOr<int> s = c->Wait(absl::Seconds(10));
    ASSERT_TRUE(s.ok());
    EXPECT_TRUE(WIFEXITED(*s) && WEXITSTATUS(*s) == 0) << args;
  }
  // SIGHUP: the launcher (forked before the filter) starts the successor.
  ASSERT_TRUE(hardened->Signal(SIGHUP).ok());
  absl::StatusOr<int> exited = hardened->Wait(absl::Seconds(15));
  ASSERT_TRUE(exited.ok()) << hardened->ReadStderr();
  EXPECT_TRUE(WIFEXITED(*exited) && WEXITSTATUS(*exited) == 0)
      << DescribeWaitStatus(*exited) << "\n" << hardened->ReadStderr();
  load.connections = 300;
  EXPECT_EQ(RunTcpLoad(load).successes, 300) << "served through the successor";
  std::string log = hardened->ReadStderr();
  EXPECT_NE(log.find("system call filter installed"), std::string::npos) << log;
  absl::StatusOr<ctl::JsonValue> doc = ctl::ParseJson(*ctl::FetchStatus(socket, RP_STATUS_JSON));
  ASSERT_TRUE(doc.ok());
  kill(static_cast<pid_t>((*doc)["pid"].AsNumber()), SIGTERM);
}

// An fd closed when it goes out of scope.
class OwnedFd {
 public:
  OwnedFd() = default;
  explicit OwnedFd(int fd) : fd_(fd) {}
  OwnedFd(OwnedFd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  OwnedFd& operator=(OwnedFd&& o) noexcept {
    if (fd_ >= 0) close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
    return *this;
  }
  ~OwnedFd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

// A datagram socket standing in for a syslog daemon at `path`.
OwnedFd LogDaemon(const std::string& path) {
  unlink(path.c_str());
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  EXPECT_EQ(bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)), 0) << strerror(errno);
  EXPECT_EQ(chmod(path.c_str(), 0666), 0);
  return OwnedFd(fd);
}

// Waits (bounded) for a line from the broker that contains `text`.
bool LogDaemonHeard(int fd, const std::string& text) {
  for (int i = 0; i < 100; ++i) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 100) != 1) continue;
    char buf[2048];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0 && std::string(buf, static_cast<size_t>(n)).find(text) != std::string::npos) return true;
  }
  return false;
}

// glibc's syslog() makes its socket again, at the next line, when the log
// daemon's socket is missing or has gone away and come back; under the filter
// that socket() must be allowed (it once killed the broker with SIGSYS). The
// broker runs in a mount namespace of its own whose /dev/log points into the
// test's directory, where the test plays the log daemon.
TEST_F(HardeningTest, SyslogThatIsMissingOrRestartsNeverTripsTheFilter) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for a mount namespace with a /dev/log of its own";
  const std::string dir = dir_.path();
  const std::string log_socket = dir + "/log.sock";
  const std::string socket = dir + "/syslog.sock";
  // A private /dev: the real one's entries, and log -> the test's socket.
  const std::string setup =
      "set -e; d=$1; shift; mkdir -p $d/realdev; mount --bind /dev $d/realdev; mount -t tmpfs -o mode=755 none /dev; "
      "for n in $(ls $d/realdev); do [ $n = log ] || ln -s $d/realdev/$n /dev/$n; done; "
      "ln -s $d/log.sock /dev/log; exec \"$@\"";
  SubprocessOptions p;
  p.argv = {BrokerPath(), "--socket", socket, "--syslog", "--log_level", "info"};
  UnderLegacyKernel(&p, "3.5");  // where the filter is installed
  p.argv.insert(p.argv.begin(), {"unshare", "--mount", "--propagation", "private", "--", "sh", "-c", setup, "sh", dir});
  p.stderr_path = dir + "/syslog-broker.err";
  absl::StatusOr<Subprocess> broker = Subprocess::Start(p);
  ASSERT_TRUE(broker.ok()) << broker.status();
  ASSERT_TRUE(WaitForFile(socket, absl::Seconds(10), &*broker).ok()) << ReadFile(p.stderr_path).value_or("");

  auto member = [&](const std::string& id, uint16_t port) {
    MemberOptions m;
    m.process.argv = {TcpMemberPath()};
    if (port != 0) m.process.argv.insert(m.process.argv.end(), {"--port", absl::StrCat(port)});
    WithShim(&m.process, socket);
    UnderLegacyKernel(&m.process);
    m.id = id;
    m.dir = dir;
    return m;
  };
  // No log daemon at all: every line tries to connect again.
  absl::StatusOr<MemberProcess> m0 = StartMember(member("m0", 0));
  ASSERT_TRUE(m0.ok()) << m0.status() << "\n" << ReadFile(p.stderr_path).value_or("");

  // The daemon starts: the next line reaches it.
  OwnedFd daemon = LogDaemon(log_socket);
  absl::StatusOr<MemberProcess> m1 = StartMember(member("m1", m0->port));
  ASSERT_TRUE(m1.ok()) << m1.status();
  EXPECT_TRUE(LogDaemonHeard(daemon.get(), "reuseportd")) << "nothing reached the log daemon";

  // It goes away and comes back: a line in between is lost, the next one arrives.
  daemon = OwnedFd();
  unlink(log_socket.c_str());
  ASSERT_TRUE(m1->process.Signal(SIGKILL).ok());
  (void)m1->process.Wait(absl::Seconds(10));
  daemon = LogDaemon(log_socket);
  absl::StatusOr<MemberProcess> m2 = StartMember(member("m2", m0->port));
  ASSERT_TRUE(m2.ok()) << m2.status() << "\n" << ReadFile(p.stderr_path).value_or("");
  EXPECT_TRUE(LogDaemonHeard(daemon.get(), "joined group")) << "nothing reached the restarted log daemon";

  TcpLoadOptions load;
  load.port = m0->port;
  load.connections = 100;
  EXPECT_EQ(RunTcpLoad(load).successes, 100) << "the broker still serves";
  ASSERT_TRUE(broker->Signal(SIGTERM).ok());
  absl::StatusOr<int> exited = broker->Wait(absl::Seconds(10));
  ASSERT_TRUE(exited.ok());
  EXPECT_TRUE(WIFEXITED(*exited) && WEXITSTATUS(*exited) == 0)
      << DescribeWaitStatus(*exited) << "\n" << ReadFile(p.stderr_path).value_or("");
}

}  // namespace
}  // namespace reuseport::testing
