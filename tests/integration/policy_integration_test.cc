// The broker's policy file with real processes: an allow rule lets an
// unprivileged uid serve a port below 1024 through the broker (which binds it
// for the member), a limit stops one uid from taking more members, and
// --check_config validates the file.
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "host_features.h"
#include "load_client.h"
#include "member_paths.h"
#include "reuseport_fixture.h"

namespace reuseport::testing {
namespace {

class PolicyIntegrationTest : public ::testing::Test {
 protected:
  std::string WritePolicy(const std::string& text) {
    std::string path = dir_.path() + "/policy.conf";
    std::ofstream(path) << text;
    return path;
  }
  MemberOptions Nobody(const BrokerProcess& broker, const std::string& id, uint16_t port) {
    // SO_REUSEADDR, as servers set it: earlier runs may leave TIME_WAIT on a port.
    MemberOptions m = ShimmedMember({TcpMemberPath(), "--reuseaddr", "--port", absl::StrCat(port)}, id, dir_.path(), broker);
    m.process.uid = 65534;
    m.process.gid = 65534;
    return m;
  }
  TempDir dir_ = MakeTestDir();
};

TEST_F(PolicyIntegrationTest, AllowRuleLetsAnUnprivilegedUidServeAPrivilegedPort) {
  REUSEPORT_SKIP_IF_UNAVAILABLE(RootUnavailable("runs members as nobody and daemon"));
  // Two privileged ports free on this host: one the rule grants, one it does not.
  const uint16_t granted = FreePrivilegedPort();
  const uint16_t other = FreePrivilegedPort(granted);
  if (granted == 0 || other == 0) GTEST_SKIP() << "fewer than two ports from 512 to 1023 are free on this host";
  BrokerOptions options;
  options.extra_flags = {"--policy", WritePolicy(absl::StrCat("allow uid=nobody port=", granted, " protocol=tcp\n"))};
  absl::StatusOr<BrokerProcess> broker = BrokerProcess::Start(dir_.path(), options);
  ASSERT_TRUE(broker.ok()) << broker.status();

  std::vector<MemberProcess> members;
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<MemberProcess> m = StartMember(Nobody(*broker, absl::StrCat("nobody", i), granted));
    ASSERT_TRUE(m.ok()) << m.status() << "\n" << broker->process().ReadStdout();
    members.push_back(std::move(*m));
  }
  TcpLoadOptions load;
  load.port = granted;
  load.connections = 400;
  absl::StatusOr<Rerouted> before = ReadRerouted(broker->socket_path(), granted);
  ASSERT_TRUE(before.ok()) << before.status();
  TcpLoadResult r = RunTcpLoad(load);
  absl::StatusOr<Rerouted> after = ReadRerouted(broker->socket_path(), granted);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(r.successes, 400) << r.Summary();
  ExpectSharesFair(r.per_member, r.successes, 0.3, 0.7, 2, *after - *before);

  // The rule names a uid and a port: uid 1 (daemon) and another port get nothing.
  MemberOptions daemon =
      ShimmedMember({TcpMemberPath(), "--reuseaddr", "--port", absl::StrCat(granted)}, "daemon", dir_.path(), *broker);
  daemon.process.uid = 1;
  daemon.process.gid = 1;
  absl::StatusOr<MemberProcess> refused = StartMember(daemon);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(std::string(refused.status().message()).find("EACCES"), std::string::npos) << refused.status();
  absl::StatusOr<MemberProcess> wrong_port = StartMember(Nobody(*broker, "nobody_other", other));
  ASSERT_FALSE(wrong_port.ok());
  EXPECT_NE(std::string(wrong_port.status().message()).find("EACCES"), std::string::npos) << wrong_port.status();
}

TEST_F(PolicyIntegrationTest, MemberLimitStopsOneUidFromTakingMore) {
  REUSEPORT_SKIP_IF_UNAVAILABLE(RootUnavailable("runs members as nobody"));
  BrokerOptions options;
  options.extra_flags = {"--policy", WritePolicy("limit uid=nobody members=2\n")};
  absl::StatusOr<BrokerProcess> broker = BrokerProcess::Start(dir_.path(), options);
  ASSERT_TRUE(broker.ok()) << broker.status();
  absl::StatusOr<MemberProcess> first = StartMember(Nobody(*broker, "n0", 0));
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<MemberProcess> second = StartMember(Nobody(*broker, "n1", first->port));
  ASSERT_TRUE(second.ok()) << second.status();
  absl::StatusOr<MemberProcess> third = StartMember(Nobody(*broker, "n2", first->port));
  ASSERT_FALSE(third.ok());
  EXPECT_NE(std::string(third.status().message()).find("EADDRINUSE"), std::string::npos) << third.status();
  absl::StatusOr<ctl::JsonValue> status = broker->Status();
  ASSERT_TRUE(status.ok());
  EXPECT_EQ((*status)["refusals"]["limit-members"].AsNumber(), 1);
  // Root is not limited by nobody's line.
  MemberOptions root = ShimmedMember({TcpMemberPath()}, "root", dir_.path(), *broker);
  EXPECT_TRUE(StartMember(root).ok());
}

TEST_F(PolicyIntegrationTest, CheckConfigValidatesTheFile) {
  SubprocessOptions good;
  good.argv = {BrokerPath(), "--check_config", "--policy", WritePolicy("allow uid=nobody port=80\nlimit members=5\n")};
  absl::StatusOr<Subprocess> g = Subprocess::Start(good);
  ASSERT_TRUE(g.ok());
  absl::StatusOr<int> gs = g->Wait(absl::Seconds(10));
  ASSERT_TRUE(gs.ok());
  EXPECT_TRUE(WIFEXITED(*gs) && WEXITSTATUS(*gs) == 0) << g->ReadStderr();
  EXPECT_NE(g->ReadStdout().find("1 allow rule(s)"), std::string::npos) << g->ReadStdout();

  SubprocessOptions bad;
  std::string path = WritePolicy("allow uid=nobody port=80\nallow port=90\n");
  bad.argv = {BrokerPath(), "--check_config", "--policy", path};
  absl::StatusOr<Subprocess> b = Subprocess::Start(bad);
  ASSERT_TRUE(b.ok());
  absl::StatusOr<int> bs = b->Wait(absl::Seconds(10));
  ASSERT_TRUE(bs.ok());
  EXPECT_TRUE(WIFEXITED(*bs) && WEXITSTATUS(*bs) == 1);
  EXPECT_NE(b->ReadStderr().find(path + ":2: allow needs exactly one of uid= or gid="), std::string::npos)
      << b->ReadStderr();
}

}  // namespace
}  // namespace reuseport::testing
