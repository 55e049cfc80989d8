// Members that fork, exec, vfork, daemonize, take signals during fork and
// churn fds from threads, each sharing a port with an ordinary member, all
// under reuseport-legacy-kernel --kernel 3.2.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "load_client.h"
#include "member_paths.h"
#include "reuseport_fixture.h"

namespace reuseport::testing {
namespace {

class ProcessLifeTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    absl::StatusOr<BrokerProcess> b = BrokerProcess::Start(dir_.path());
    ASSERT_TRUE(b.ok()) << b.status();
    broker_.emplace(std::move(*b));
  }
  TempDir dir_ = MakeTestDir();
  std::optional<BrokerProcess> broker_;
};

TEST_P(ProcessLifeTest, ServesEveryConnectionExactlyOnceAlongsideAnOrdinaryMember) {
  std::string scenario = GetParam();
  // The member's fds: signal-fork holds 1000 duplicates, others close 3..1023.
  // The host's own limit ranges from 1024 to 1M; give it a known one.
  constexpr rlim_t kOpenFiles = 2048;
  struct rlimit limit {};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  if (limit.rlim_max < kOpenFiles && geteuid() != 0) {
    GTEST_SKIP() << "the member needs an fd limit of " << kOpenFiles << "; the hard limit here is " << limit.rlim_max
                 << " and only root may raise it";
  }
  std::vector<MemberOptions> m;
  MemberOptions life = ShimmedMember({REUSEPORT_TEST_LIFECYCLE_MEMBER, "--scenario", scenario}, "life", dir_.path(), *broker_);
  life.ready_timeout = absl::Seconds(30);
  life.process.open_files_limit = kOpenFiles;
  m.push_back(std::move(life));
  m.push_back(ShimmedMember({TcpMemberPath(), "--host", "127.0.0.1"}, "plain", dir_.path(), *broker_));
  absl::StatusOr<std::vector<MemberProcess>> members = StartMemberGroup(std::move(m));
  ASSERT_TRUE(members.ok()) << members.status() << "\n" << broker_->process().ReadStdout();
  ASSERT_TRUE(broker_->WaitForMembers(2).ok()) << broker_->process().ReadStdout();

  TcpLoadOptions load;
  load.port = (*members)[0].port;
  load.connections = 800;
  absl::StatusOr<Rerouted> before = ReadRerouted(broker_->socket_path(), load.port);
  ASSERT_TRUE(before.ok()) << before.status();
  TcpLoadResult r = RunTcpLoad(load);
  absl::StatusOr<Rerouted> after = ReadRerouted(broker_->socket_path(), load.port);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(r.successes, 800) << r.Summary();
  absl::StatusOr<std::map<std::string, std::vector<std::string>>> logs = ReadMemberLogs(*members);
  ASSERT_TRUE(logs.ok());
  EXPECT_EQ(CheckServedExactlyOnce(r.tokens, *logs), "");
  int life_served = 0, responders = 0;
  for (const auto& [id, n] : r.per_member) {
    if (id.rfind("life", 0) == 0) {
      life_served += n;
      ++responders;
    }
  }
  // The life member's workers share one broker member: judge its share as one.
  std::map<std::string, int> shares = {{"life", life_served}, {"plain", r.per_member["plain"]}};
  ExpectSharesFair(shares, r.successes, 0.3, 0.7, 2, *after - *before);
  if (scenario == "prefork") {
    EXPECT_GE(responders, 2) << "the forked workers share the member's channel";
  }
  RecordProperty("shares", DescribeShares(r.per_member, r.successes));
}

INSTANTIATE_TEST_SUITE_P(Scenarios, ProcessLifeTest,
                         ::testing::Values("prefork", "exec-handoff", "exec-bare-env", "scm-handoff", "vfork-close", "daemonize", "signal-fork",
                                           "threads-churn", "dup-close"),
                         [](const ::testing::TestParamInfo<const char*>& param_info) {
                           std::string name = param_info.param;
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace reuseport::testing
