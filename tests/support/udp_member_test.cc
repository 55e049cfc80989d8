// udp_member on this kernel's native SO_REUSEPORT (no shim): flow affinity,
// replies from the shared port, and the member's own options.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "host_features.h"
#include "load_client.h"
#include "log_check.h"
#include "member_paths.h"
#include "member_process.h"
#include "members/member_exit.h"
#include "readiness.h"
#include "status_macros.h"
#include "temp_dir.h"

namespace reuseport::testing {
namespace {

constexpr absl::Duration kExitWait = absl::Seconds(10);

class UdpMemberTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<TempDir> dir = TempDir::Create("reuseport-udp-member");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_.emplace(*std::move(dir));
  }

  MemberOptions Member(const std::string& id, std::vector<std::string> args) {
    MemberOptions options;
    options.process.argv = {UdpMemberPath()};
    options.process.argv.insert(options.process.argv.end(), args.begin(), args.end());
    options.id = id;
    options.dir = dir_->path();
    return options;
  }

  std::pair<int, std::string> RunToFailure(std::vector<std::string> args) {
    SubprocessOptions options;
    options.argv = {UdpMemberPath()};
    options.argv.insert(options.argv.end(), args.begin(), args.end());
    absl::StatusOr<Subprocess> child = Subprocess::Start(options);
    if (!child.ok()) return {-1, child.status().ToString()};
    absl::StatusOr<int> status = child->Wait(kExitWait);
    return {status.value_or(-1), child->ReadStderr()};
  }

  std::optional<TempDir> dir_;
};

void ExpectExitStatus(const std::pair<int, std::string>& outcome, int want) {
  EXPECT_TRUE(WIFEXITED(outcome.first) && WEXITSTATUS(outcome.first) == want)
      << DescribeWaitStatus(outcome.first) << "; stderr: " << outcome.second;
}

TEST_F(UdpMemberTest, FourMembersKeepEveryFlowOnOneMemberAndReplyFromTheSharedPort) {
  std::vector<MemberOptions> options = {
      Member("recvfrom", {"--io", "recvfrom"}),
      Member("recvmsg", {"--io", "recvmsg"}),
      Member("recvmmsg", {"--io", "recvmmsg"}),
      Member("pktinfo", {"--io", "recvmmsg", "--pktinfo"})};
  ASSERT_OK_AND_ASSIGN(std::vector<MemberProcess> members, StartMemberGroup(std::move(options)));

  UdpFlowResult result =
      RunUdpFlows({.port = members[0].port, .flows = 500, .datagrams_per_flow = 4, .concurrency = 64});
  EXPECT_EQ(result.replies, 2000) << result.Summary();
  RecordProperty("load", result.Summary());
  EXPECT_EQ(result.lost + result.bad_replies + result.late_replies + result.setup_errors, 0)
      << result.Summary();
  EXPECT_EQ(result.source_mismatches, 0) << result.Summary();
  EXPECT_EQ(result.flows_with_several_responders(), 0) << result.Summary();
  for (const MemberProcess& m : members) {
    EXPECT_GT(result.per_member[m.id], 0) << m.id << " got nothing; " << result.Summary();
  }
  // Only the --pktinfo member adds a suffix, and it names the loopback address.
  EXPECT_EQ(result.reply_suffixes.size(), 1u) << result.Summary();
  EXPECT_EQ(result.reply_suffixes["dst=127.0.0.1"], result.per_member["pktinfo"]);
  EXPECT_OK(CheckUdpLogs(result, members));

  for (MemberProcess& m : members) ASSERT_OK(m.process.Signal(SIGTERM));
  for (MemberProcess& m : members) {
    ASSERT_OK_AND_ASSIGN(int status, m.process.Wait(kExitWait));
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == MEMBER_EXIT_OK)
        << m.id << " " << DescribeWaitStatus(status) << ": " << m.process.ReadStderr();
  }
}

TEST_F(UdpMemberTest, Ipv6MembersShareAPort) {
  REUSEPORT_SKIP_IF_UNAVAILABLE(Ipv6LoopbackUnavailable());
  std::vector<MemberOptions> options = {
      Member("v6a", {"--host", "::1", "--io", "recvmsg", "--pktinfo"}),
      Member("v6b", {"--host", "::1", "--io", "recvmmsg", "--v6only", "1"})};
  ASSERT_OK_AND_ASSIGN(std::vector<MemberProcess> members, StartMemberGroup(std::move(options)));
  UdpFlowResult result = RunUdpFlows({.host = "::1", .port = members[0].port, .flows = 200, .datagrams_per_flow = 2});
  EXPECT_EQ(result.replies, 400) << result.Summary();
  EXPECT_EQ(result.source_mismatches + result.flows_with_several_responders(), 0) << result.Summary();
  EXPECT_GT(result.per_member["v6a"], 0) << result.Summary();
  EXPECT_GT(result.per_member["v6b"], 0) << result.Summary();
  EXPECT_EQ(result.reply_suffixes["dst=::1"], result.per_member["v6a"]);
  EXPECT_OK(CheckUdpLogs(result, members));
}

TEST_F(UdpMemberTest, ExitAfterAnswersExactlyThatManyThenExitsZero) {
  ASSERT_OK_AND_ASSIGN(MemberProcess member, StartMember(Member("three", {"--io", "recvmmsg", "--exit-after", "3"})));
  UdpFlowResult result = RunUdpFlows({.port = member.port, .flows = 1, .datagrams_per_flow = 3});
  EXPECT_EQ(result.replies, 3) << result.Summary();
  ASSERT_OK_AND_ASSIGN(int status, member.process.Wait(kExitWait));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == MEMBER_EXIT_OK) << DescribeWaitStatus(status);
}

TEST_F(UdpMemberTest, SecondInstanceWithoutReuseportFailsWithEaddrinuse) {
  ASSERT_OK_AND_ASSIGN(MemberProcess first, StartMember(Member("first", {"--port", "0"})));
  auto outcome = RunToFailure({"--port", absl::StrCat(first.port), "--no-reuseport"});
  ExpectExitStatus(outcome, MEMBER_EXIT_BIND);
  EXPECT_TRUE(absl::StrContains(outcome.second, "udp_member: bind: "));
  EXPECT_TRUE(absl::StrContains(outcome.second, "(EADDRINUSE)")) << outcome.second;
}

TEST_F(UdpMemberTest, UsageErrorsExitOne) {
  ExpectExitStatus(RunToFailure({"--io", "read"}), MEMBER_EXIT_USAGE);
  ExpectExitStatus(RunToFailure({"--io", "recvfrom", "--pktinfo"}), MEMBER_EXIT_USAGE);
  ExpectExitStatus(RunToFailure({"--host", "::1::2"}), MEMBER_EXIT_USAGE);
}

}  // namespace
}  // namespace reuseport::testing
