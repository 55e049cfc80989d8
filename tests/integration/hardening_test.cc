// The broker after start: capabilities dropped, a system call allow-list
// installed where the kernel has seccomp filters (3.5), a forbidden call
// kills it, and a full workload (TCP, UDP, status, metrics, a policy bind, a
// SIGHUP restart through the launcher) never trips the filter.
#include <signal.h>
#include <sys/wait.h>

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
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

absl::StatusOr<int> RunBroker(const std::string& kernel, const std::string& socket, std::string* log) {
  SubprocessOptions p;
  p.argv = {BrokerPath(), "--socket", socket, "--selftest_forbidden_syscall"};
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

TEST_F(HardeningTest, OnLinux32TheBrokerSaysItRunsWithoutAFilter) {
  std::string log;
  absl::StatusOr<int> status = RunBroker("3.2", dir_.path() + "/b.sock", &log);
  ASSERT_TRUE(status.ok());
  EXPECT_NE(log.find("filters and no_new_privs need Linux 3.5"), std::string::npos) << log;
  EXPECT_NE(log.find("running without a system call filter"), std::string::npos) << log;
}

TEST_F(HardeningTest, CapabilitiesAreDroppedAfterStart) {
  absl::StatusOr<BrokerProcess> broker = BrokerProcess::Start(dir_.path());
  ASSERT_TRUE(broker.ok()) << broker.status();
  absl::StatusOr<std::string> status = ReadFile(absl::StrCat("/proc/", broker->process().pid(), "/status"));
  ASSERT_TRUE(status.ok());
  // CAP_NET_BIND_SERVICE (10), CAP_NET_ADMIN (12), CAP_SYS_PTRACE (19).
  uint64_t expected = (1ull << 10) | (1ull << 12) | (1ull << 19);
  for (const char* set : {"CapEff:", "CapPrm:", "CapBnd:"}) {
    size_t at = status->find(set);
    ASSERT_NE(at, std::string::npos);
    uint64_t caps = std::stoull(status->substr(at + strlen(set)), nullptr, 16);
    EXPECT_EQ(caps, expected) << set;
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
  std::string policy = dir_.path() + "/policy.conf";
  std::ofstream(policy) << "allow uid=nobody port=83 protocol=tcp\n";
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
  MemberOptions nobody = member({TcpMemberPath(), "--reuseaddr", "--port", "83"}, "nobody");
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
  EXPECT_EQ(RunUdpFlows(flows).lost, 0);
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

}  // namespace
}  // namespace reuseport::testing
