// The broker after start: capabilities dropped, a system call allow-list
// installed where the kernel has seccomp filters (3.5), a forbidden call
// kills it, and a full workload (TCP, UDP, status, metrics, a policy bind, a
// SIGHUP restart through the launcher) never trips the filter.
#include <signal.h>
#include <sys/wait.h>

#include <fcntl.h>
#include <linux/capability.h>
#include <string.h>
#include <unistd.h>

#include <fstream>
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

// A capability set ("CapBnd:", ...) of /proc/<pid>/status.
absl::StatusOr<uint64_t> CapabilitySet(const std::string& pid, const char* set) {
  absl::StatusOr<std::string> status = ReadFile(absl::StrCat("/proc/", pid, "/status"));
  if (!status.ok()) return status.status();
  size_t at = status->find(set);
  if (at == std::string::npos) return absl::NotFoundError(absl::StrCat("no ", set, " in /proc/", pid, "/status"));
  return std::stoull(status->substr(at + strlen(set)), nullptr, 16);
}

TEST_F(HardeningTest, CapabilitiesAreDroppedAfterStart) {
  REUSEPORT_SKIP_IF_UNAVAILABLE(RootUnavailable("only a root broker has capabilities to drop"));
  // The broker, a root child of ours, starts with our bounding set: a
  // container or supervisor may have narrowed it. It keeps what it needs of
  // that, and can narrow its own bounding set only with CAP_SETPCAP.
  absl::StatusOr<uint64_t> own_bounding = CapabilitySet("self", "CapBnd:");
  ASSERT_TRUE(own_bounding.ok()) << own_bounding.status();
  const uint64_t kept = broker::KeptCapabilityMask() & *own_bounding;
  const uint64_t bounding = (*own_bounding >> CAP_SETPCAP) & 1 ? kept : *own_bounding;
  if (kept != broker::KeptCapabilityMask()) {
    std::cout << "this process's bounding set " << std::hex << *own_bounding << " lacks some of what the broker keeps ("
              << broker::KeptCapabilityMask() << "): expecting " << kept << std::dec << "\n";
  }

  absl::StatusOr<BrokerProcess> broker = BrokerProcess::Start(dir_.path());
  ASSERT_TRUE(broker.ok()) << broker.status();
  const std::string pid = absl::StrCat(broker->process().pid());
  for (const auto& [set, expected] : {std::pair{"CapEff:", kept}, {"CapPrm:", kept}, {"CapBnd:", bounding}}) {
    absl::StatusOr<uint64_t> caps = CapabilitySet(pid, set);
    ASSERT_TRUE(caps.ok()) << caps.status();
    EXPECT_EQ(*caps, expected) << set << std::hex << " " << *caps << ", expected " << expected;
  }
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

}  // namespace
}  // namespace reuseport::testing
