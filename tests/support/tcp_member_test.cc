// tcp_member on this kernel's native SO_REUSEPORT (no shim): the baseline the
// integration tests compare the shim against, and proof that the member and
// the load client are right.
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "fd_count.h"
#include "gtest/gtest.h"
#include "host_features.h"
#include "load_client.h"
#include "log_check.h"
#include "member_paths.h"
#include "member_process.h"
#include "members/member_exit.h"
#include "readiness.h"
#include "socket_address.h"
#include "status_macros.h"
#include "temp_dir.h"

namespace reuseport::testing {
namespace {

constexpr absl::Duration kExitWait = absl::Seconds(10);

class TcpMemberTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<TempDir> dir = TempDir::Create("reuseport-tcp-member", 0777);
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_.emplace(*std::move(dir));
  }

  MemberOptions Member(const std::string& id, std::vector<std::string> args) {
    MemberOptions options;
    options.process.argv = {TcpMemberPath()};
    options.process.argv.insert(options.process.argv.end(), args.begin(), args.end());
    options.id = id;
    options.dir = dir_->path();
    return options;
  }

  // Starts a member expected to fail; returns its wait status and stderr.
  std::pair<int, std::string> RunToFailure(std::vector<std::string> args,
                                           std::optional<uid_t> uid = std::nullopt) {
    SubprocessOptions options;
    options.argv = {TcpMemberPath()};
    options.argv.insert(options.argv.end(), args.begin(), args.end());
    options.uid = uid;
    options.gid = uid;
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

// Each set is four members sharing one port; together the sets cover every
// --loop style, both accept calls and both ways to set O_NONBLOCK.
struct LoopSet {
  const char* name;
  std::vector<std::vector<std::string>> member_args;
};

const LoopSet kLoopSets[] = {
    {"BlockingPollSelectEpollLt",
     {{"--loop", "blocking", "--threads", "3"},
      {"--loop", "poll", "--reuseaddr", "--backlog", "64"},
      {"--loop", "select", "--nonblock-via", "ioctl"},
      {"--loop", "epoll-lt", "--accept", "accept4"}}},
    {"EpollEtOneshotAccept4",
     {{"--loop", "epoll-et"},
      {"--loop", "epoll-oneshot", "--accept", "accept4", "--nonblock-via", "ioctl"},
      {"--loop", "blocking", "--accept", "accept4", "--threads", "2"},
      {"--loop", "poll", "--accept", "accept4", "--linger-close"}}},
};

// Names the set in test names instead of dumping its bytes.
void PrintTo(const LoopSet& set, std::ostream* os) { *os << set.name; }

class TcpMemberLoopTest : public TcpMemberTest, public ::testing::WithParamInterface<LoopSet> {};

TEST_P(TcpMemberLoopTest, FourMembersShareAPortAndServeEveryConnectionExactlyOnce) {
  std::vector<MemberOptions> options;
  for (size_t i = 0; i < GetParam().member_args.size(); i++) {
    options.push_back(Member(absl::StrCat("m", i), GetParam().member_args[i]));
  }
  ASSERT_OK_AND_ASSIGN(std::vector<MemberProcess> members, StartMemberGroup(std::move(options)));
  for (const MemberProcess& m : members) EXPECT_EQ(m.port, members[0].port);

  TcpLoadResult result =
      RunTcpLoad({.port = members[0].port, .connections = 2000, .concurrency = 32});
  EXPECT_EQ(result.successes, 2000) << result.Summary();
  RecordProperty("load", result.Summary());
  EXPECT_EQ(result.failures(), 0) << result.Summary();
  EXPECT_EQ(result.per_member.size(), members.size()) << result.Summary();
  for (const MemberProcess& m : members) {
    EXPECT_GT(result.per_member[m.id], 0) << m.id << " got nothing; " << result.Summary();
  }
  for (const auto& [token, reply] : result.replies) EXPECT_EQ(reply.rest, token);
  EXPECT_OK(CheckTcpLogs(result, members));

  // SIGTERM (and SIGINT) close the listener and exit 0.
  for (size_t i = 0; i < members.size(); i++) {
    EXPECT_TRUE(members[i].process.Running()) << members[i].process.ReadStderr();
    ASSERT_OK(members[i].process.Signal(i % 2 == 0 ? SIGTERM : SIGINT));
  }
  for (MemberProcess& m : members) {
    ASSERT_OK_AND_ASSIGN(int status, m.process.Wait(kExitWait));
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == MEMBER_EXIT_OK)
        << m.id << " " << DescribeWaitStatus(status) << ": " << m.process.ReadStderr();
  }
}

INSTANTIATE_TEST_SUITE_P(Loops, TcpMemberLoopTest, ::testing::ValuesIn(kLoopSets),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

TEST_F(TcpMemberTest, Ipv6MembersShareAPort) {
  REUSEPORT_SKIP_IF_UNAVAILABLE(Ipv6LoopbackUnavailable());
  std::vector<MemberOptions> options = {
      Member("v6a", {"--host", "::1", "--loop", "epoll-et"}),
      Member("v6b", {"--host", "::1", "--loop", "blocking", "--accept", "accept4"})};
  ASSERT_OK_AND_ASSIGN(std::vector<MemberProcess> members, StartMemberGroup(std::move(options)));
  TcpLoadResult result =
      RunTcpLoad({.host = "::1", .port = members[0].port, .connections = 300, .concurrency = 16});
  EXPECT_EQ(result.successes, 300) << result.Summary();
  EXPECT_GT(result.per_member["v6a"], 0) << result.Summary();
  EXPECT_GT(result.per_member["v6b"], 0) << result.Summary();
  EXPECT_OK(CheckTcpLogs(result, members));
}

TEST_F(TcpMemberTest, V6onlyDecidesWhetherIpv4ClientsGetThrough) {
  REUSEPORT_SKIP_IF_UNAVAILABLE(Ipv6LoopbackUnavailable());
  ASSERT_OK_AND_ASSIGN(MemberProcess dual, StartMember(Member("dual", {"--host", "::", "--v6only", "0"})));
  TcpLoadResult via_v4 = RunTcpLoad({.port = dual.port, .connections = 5, .concurrency = 1});
  EXPECT_EQ(via_v4.successes, 5) << via_v4.Summary();

  ASSERT_OK_AND_ASSIGN(MemberProcess v6only, StartMember(Member("v6only", {"--host", "::", "--v6only", "1"})));
  TcpLoadResult v4_refused = RunTcpLoad({.port = v6only.port, .connections = 2, .concurrency = 1});
  EXPECT_EQ(v4_refused.refused, 2) << v4_refused.Summary();
  TcpLoadResult via_v6 = RunTcpLoad({.host = "::1", .port = v6only.port, .connections = 2});
  EXPECT_EQ(via_v6.successes, 2) << via_v6.Summary();
}

TEST_F(TcpMemberTest, SecondInstanceWithoutReuseportFailsWithEaddrinuse) {
  ASSERT_OK_AND_ASSIGN(MemberProcess first, StartMember(Member("first", {"--port", "0"})));
  auto outcome = RunToFailure({"--port", absl::StrCat(first.port), "--no-reuseport"});
  ExpectExitStatus(outcome, MEMBER_EXIT_BIND);
  EXPECT_TRUE(absl::StrContains(outcome.second, "tcp_member: bind: "));
  EXPECT_TRUE(absl::StrContains(outcome.second, "(EADDRINUSE)")) << outcome.second;
}

TEST_F(TcpMemberTest, ReuseportInstanceCannotJoinAPortHeldWithoutIt) {
  ASSERT_OK_AND_ASSIGN(MemberProcess first, StartMember(Member("plain", {"--port", "0", "--no-reuseport"})));
  auto outcome = RunToFailure({"--port", absl::StrCat(first.port)});
  ExpectExitStatus(outcome, MEMBER_EXIT_BIND);
  EXPECT_TRUE(absl::StrContains(outcome.second, "(EADDRINUSE)")) << outcome.second;
}

TEST_F(TcpMemberTest, MemberOfAnotherUserCannotJoin) {
  // Linux only groups SO_REUSEPORT sockets of the same effective uid.
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run a member as another user";
  ASSERT_OK_AND_ASSIGN(MemberProcess first, StartMember(Member("root", {"--port", "0"})));
  auto outcome = RunToFailure({"--port", absl::StrCat(first.port)}, 65534);
  ExpectExitStatus(outcome, MEMBER_EXIT_BIND);
  EXPECT_TRUE(absl::StrContains(outcome.second, "(EADDRINUSE)")) << outcome.second;
}

TEST_F(TcpMemberTest, ListenerOptionsAreInheritedByAcceptedSockets) {
  ASSERT_OK_AND_ASSIGN(MemberProcess member,
                       StartMember(Member("opts", {"--nodelay", "--keepalive", "30,5,3", "--loop", "epoll-lt"})));
  TcpLoadResult result = RunTcpLoad({.port = member.port, .connections = 20, .concurrency = 4});
  EXPECT_EQ(result.successes, 20) << result.Summary();
  for (const auto& [token, reply] : result.replies) {
    EXPECT_EQ(reply.rest, absl::StrCat(token, " inherit-ok"));
  }
}

TEST_F(TcpMemberTest, ExitAfterServesExactlyThatManyThenExitsZero) {
  ASSERT_OK_AND_ASSIGN(MemberProcess member, StartMember(Member("five", {"--exit-after", "5"})));
  TcpLoadResult result = RunTcpLoad({.port = member.port, .connections = 5, .concurrency = 1});
  EXPECT_EQ(result.successes, 5) << result.Summary();
  ASSERT_OK_AND_ASSIGN(int status, member.process.Wait(kExitWait));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == MEMBER_EXIT_OK) << DescribeWaitStatus(status);
  EXPECT_EQ(ReadLines(member.log_file)->size(), 5u);
}

TEST_F(TcpMemberTest, NoFdLeakAcrossManyConnections) {
  ASSERT_OK_AND_ASSIGN(MemberProcess member, StartMember(Member("leak", {"--loop", "epoll-et", "--accept", "accept4"})));
  // One connection first: the member creates its epoll fd after it reports
  // ready, so a count taken at once may miss it (this failed under load).
  ASSERT_EQ(RunTcpLoad({.port = member.port, .connections = 1}).successes, 1);
  ASSERT_OK_AND_ASSIGN(int before, CountOpenFds(member.process.pid()));
  // await_close: every member-side fd is closed when RunTcpLoad returns.
  TcpLoadResult result = RunTcpLoad({.port = member.port, .connections = 200, .concurrency = 8});
  EXPECT_EQ(result.successes, 200) << result.Summary();
  EXPECT_EQ(*CountOpenFds(member.process.pid()), before);
}

TEST_F(TcpMemberTest, RequestsOtherThanHelloGetNoReply) {
  ASSERT_OK_AND_ASSIGN(MemberProcess member, StartMember(Member("picky", {})));
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  SocketAddress target = *SocketAddress::Parse("127.0.0.1", member.port);
  ASSERT_EQ(connect(fd, target.get(), target.size()), 0);
  ASSERT_EQ(send(fd, "GET /\n", 6, MSG_NOSIGNAL), 6);
  char buf[64];
  EXPECT_EQ(recv(fd, buf, sizeof(buf), 0), 0);  // closed without a word
  close(fd);
  TcpLoadResult after = RunTcpLoad({.port = member.port, .connections = 1});
  EXPECT_EQ(after.successes, 1) << after.Summary();
  EXPECT_EQ(ReadLines(member.log_file)->size(), 1u);
}

TEST_F(TcpMemberTest, UsageErrorsExitOne) {
  ExpectExitStatus(RunToFailure({"--bogus"}), MEMBER_EXIT_USAGE);
  ExpectExitStatus(RunToFailure({"--port", "70000"}), MEMBER_EXIT_USAGE);
  ExpectExitStatus(RunToFailure({"--host", "localhost"}), MEMBER_EXIT_USAGE);
  ExpectExitStatus(RunToFailure({"--loop", "poll", "--threads", "2"}), MEMBER_EXIT_USAGE);
  ExpectExitStatus(RunToFailure({"--keepalive", "1,2"}), MEMBER_EXIT_USAGE);
}

TEST_F(TcpMemberTest, BindFailureOtherThanEaddrinuseIsReportedByName) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run a member as another user";
  ASSERT_OK_AND_ASSIGN(std::string start, ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"));
  if (std::stoi(start) <= 1) GTEST_SKIP() << "port 1 is not privileged here";
  // Port 1 is privileged: an unprivileged member gets EACCES.
  auto outcome = RunToFailure({"--port", "1"}, 65534);
  ExpectExitStatus(outcome, MEMBER_EXIT_BIND);
  EXPECT_TRUE(absl::StrContains(outcome.second, "(EACCES)")) << outcome.second;
}

}  // namespace
}  // namespace reuseport::testing
