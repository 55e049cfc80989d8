// socketserver_member.py: a stock Python socketserver with allow_reuse_port
// shares a port natively, with Python members and with the C members.
#include <signal.h>
#include <sys/wait.h>

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
#include "status_macros.h"
#include "temp_dir.h"

namespace reuseport::testing {
namespace {

class SocketserverMemberTest : public ::testing::Test {
 protected:
  void SetUp() override {
    REUSEPORT_REQUIRE_PROGRAM(PythonPath(), "python3");
    absl::StatusOr<TempDir> dir = TempDir::Create("reuseport-socketserver-member");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_.emplace(*std::move(dir));
  }

  MemberOptions Python(const std::string& id, const std::string& proto) {
    MemberOptions options;
    options.process.argv = {PythonPath(), SocketserverMemberPath(), "--proto", proto};
    options.id = id;
    options.dir = dir_->path();
    return options;
  }

  MemberOptions C(const std::string& id, const std::string& program) {
    MemberOptions options;
    options.process.argv = {program};
    options.id = id;
    options.dir = dir_->path();
    return options;
  }

  std::optional<TempDir> dir_;
};

TEST_F(SocketserverMemberTest, TcpServersShareAPortWithEachOtherAndWithTcpMember) {
  std::vector<MemberOptions> options = {Python("py1", "tcp"), Python("py2", "tcp"),
                                        C("c1", TcpMemberPath())};
  ASSERT_OK_AND_ASSIGN(std::vector<MemberProcess> members, StartMemberGroup(std::move(options)));
  TcpLoadResult result = RunTcpLoad({.port = members[0].port, .connections = 300, .concurrency = 16});
  RecordProperty("load", result.Summary());
  EXPECT_EQ(result.successes, 300) << result.Summary();
  for (const MemberProcess& m : members) {
    EXPECT_GT(result.per_member[m.id], 0) << m.id << " got nothing; " << result.Summary();
  }
  for (const auto& [token, reply] : result.replies) EXPECT_EQ(reply.rest, token);
  EXPECT_OK(CheckTcpLogs(result, members));

  ASSERT_OK(members[0].process.Signal(SIGTERM));
  ASSERT_OK_AND_ASSIGN(int status, members[0].process.Wait(absl::Seconds(10)));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << DescribeWaitStatus(status);
}

TEST_F(SocketserverMemberTest, UdpServersKeepFlowAffinity) {
  std::vector<MemberOptions> options = {Python("py1", "udp"), Python("py2", "udp"),
                                        C("c1", UdpMemberPath())};
  ASSERT_OK_AND_ASSIGN(std::vector<MemberProcess> members, StartMemberGroup(std::move(options)));
  UdpFlowResult result =
      RunUdpFlows({.port = members[0].port, .flows = 150, .datagrams_per_flow = 3, .concurrency = 32});
  EXPECT_EQ(result.replies, 450) << result.Summary();
  EXPECT_EQ(result.lost + result.source_mismatches + result.flows_with_several_responders(), 0)
      << result.Summary();
  for (const MemberProcess& m : members) {
    EXPECT_GT(result.per_member[m.id], 0) << m.id << " got nothing; " << result.Summary();
  }
  EXPECT_OK(CheckUdpLogs(result, members));
}

TEST_F(SocketserverMemberTest, BindFailureExitsTwoWithTheErrnoName) {
  MemberOptions plain = C("plain", TcpMemberPath());
  plain.process.argv.push_back("--no-reuseport");
  ASSERT_OK_AND_ASSIGN(MemberProcess holder, StartMember(std::move(plain)));
  SubprocessOptions options;
  options.argv = {PythonPath(), SocketserverMemberPath(), "--proto", "tcp", "--port",
                  absl::StrCat(holder.port)};
  ASSERT_OK_AND_ASSIGN(Subprocess python, Subprocess::Start(options));
  ASSERT_OK_AND_ASSIGN(int status, python.Wait(absl::Seconds(10)));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == MEMBER_EXIT_BIND)
      << DescribeWaitStatus(status) << ": " << python.ReadStderr();
  EXPECT_TRUE(absl::StrContains(python.ReadStderr(), "socketserver_member: bind: "));
  EXPECT_TRUE(absl::StrContains(python.ReadStderr(), "(EADDRINUSE)")) << python.ReadStderr();
}

}  // namespace
}  // namespace reuseport::testing
