// Members joining and leaving under load, and the broker's fds after a lot of
// traffic and membership changes.
//
// Churn: while clients keep connecting, every 100 ms a member joins or leaves
// (closing its listener after the connection in hand), and every second one
// is killed with SIGKILL while it holds no connection (it is asked to freeze
// first: a connection a process already accepted dies with it, on any
// kernel). Nothing queued for a leaving or dying member may be lost.
#include <signal.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <iostream>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "fd_count.h"
#include "gtest/gtest.h"
#include "load_client.h"
#include "member_paths.h"
#include "reuseport/protocol.h"
#include "reuseport_fixture.h"
#include "scm_rights.h"
#include "status_client.h"

namespace reuseport::testing {
namespace {

class ChurnTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<BrokerProcess> b = BrokerProcess::Start(dir_.path());
    ASSERT_TRUE(b.ok()) << b.status();
    broker_.emplace(std::move(*b));
  }
  MemberOptions Churner(const std::string& id, uint16_t port) {
    std::vector<std::string> argv = {REUSEPORT_TEST_LIFECYCLE_MEMBER, "--scenario", "churn"};
    if (port != 0) {
      argv.push_back("--port");
      argv.push_back(absl::StrCat(port));
    }
    return ShimmedMember(argv, id, dir_.path(), *broker_);
  }
  TempDir dir_ = MakeTestDir();
  std::optional<BrokerProcess> broker_;
};

TEST_F(ChurnTest, JoinsLeavesAndKillsUnderLoadLoseNothing) {
  std::vector<MemberProcess> alive;
  std::vector<MemberProcess> gone;  // kept for their logs
  absl::StatusOr<MemberProcess> first = StartMember(Churner("c0", 0));
  ASSERT_TRUE(first.ok()) << first.status();
  uint16_t port = first->port;
  alive.push_back(std::move(*first));
  for (int i = 1; i < 4; ++i) {
    absl::StatusOr<MemberProcess> m = StartMember(Churner(absl::StrCat("c", i), port));
    ASSERT_TRUE(m.ok()) << m.status();
    alive.push_back(std::move(*m));
  }

  // Batches of connections for five seconds of churn (each batch its own
  // tokens), and on until kMinKills members have been killed under load: on
  // a loaded machine or under TSan starting a member is slow and five seconds
  // may hold fewer kill slots. kMaxChurn bounds the wait.
  constexpr int kMinKills = 2;
  constexpr absl::Duration kMaxChurn = absl::Seconds(60);
  std::atomic<bool> done{false};
  std::atomic<bool> killed_enough{false};
  std::vector<TcpLoadResult> batches;
  std::thread load([&] {
    absl::Time until = absl::Now() + absl::Seconds(5), give_up = absl::Now() + kMaxChurn;
    while ((absl::Now() < until || !killed_enough) && absl::Now() < give_up) {
      TcpLoadOptions o;
      o.port = port;
      o.connections = 5000;
      o.concurrency = 8;
      o.connection_timeout = absl::Seconds(20);
      batches.push_back(RunTcpLoad(o));
    }
    done = true;
  });

  std::mt19937 random(42);
  int joins = 0, leaves = 0, kills = 0, next_id = 4;
  absl::Time last_kill = absl::Now();
  absl::Time start = absl::Now();
  while (!done) {
    absl::Time tick = absl::Now();
    if (tick - last_kill >= absl::Seconds(1) && alive.size() > 2) {
      // Freeze a member between connections, then kill it.
      size_t victim = random() % alive.size();
      ASSERT_TRUE(alive[victim].process.Signal(SIGUSR1).ok());
      ASSERT_TRUE(WaitUntilStopped(alive[victim].process.pid()).ok());
      ASSERT_TRUE(alive[victim].process.Signal(SIGKILL).ok());
      (void)alive[victim].process.Wait(absl::Seconds(10));
      gone.push_back(std::move(alive[victim]));
      alive.erase(alive.begin() + static_cast<long>(victim));
      ++kills;
      if (kills >= kMinKills) killed_enough = true;
      last_kill = tick;
    } else if ((joins + leaves) % 2 == 0 || alive.size() <= 2) {
      absl::StatusOr<MemberProcess> m = StartMember(Churner(absl::StrCat("c", next_id++), port));
      ASSERT_TRUE(m.ok()) << m.status();
      alive.push_back(std::move(*m));
      ++joins;
    } else {
      size_t leaver = random() % alive.size();
      ASSERT_TRUE(alive[leaver].process.Signal(SIGTERM).ok());
      absl::StatusOr<int> status = alive[leaver].process.Wait(absl::Seconds(10));
      ASSERT_TRUE(status.ok());
      gone.push_back(std::move(alive[leaver]));
      alive.erase(alive.begin() + static_cast<long>(leaver));
      ++leaves;
    }
    absl::Duration rest = absl::Milliseconds(100) - (absl::Now() - tick);
    if (rest > absl::ZeroDuration()) absl::SleepFor(rest);  // the churn's own pace, not a readiness guess
  }
  load.join();
  absl::Duration took = absl::Now() - start;

  std::vector<MemberProcess> everyone;
  for (auto& m : alive) everyone.push_back(std::move(m));
  for (auto& m : gone) everyone.push_back(std::move(m));
  absl::StatusOr<std::map<std::string, std::vector<std::string>>> logs = ReadMemberLogs(everyone);
  ASSERT_TRUE(logs.ok());
  int connections = 0, failures = 0;
  for (const TcpLoadResult& r : batches) {
    EXPECT_EQ(r.failures(), 0) << r.Summary();
    EXPECT_EQ(CheckServedExactlyOnce(r.tokens, *logs), "");
    connections += r.successes;
    failures += r.failures();
  }
  // Enough kills to see that none loses anything; the churn ran on until there were.
  EXPECT_GE(kills, kMinKills) << "no " << kMinKills << " kills in " << absl::FormatDuration(kMaxChurn);
  std::cout << "churn: " << connections << " connections in " << absl::FormatDuration(took) << ", " << failures
            << " failed; " << joins << " joins, " << leaves << " leaves, " << kills << " SIGKILLs\n";
  RecordProperty("connections", connections);
  RecordProperty("failures", failures);
  RecordProperty("joins", joins);
  RecordProperty("leaves", leaves);
  RecordProperty("kills", kills);
}

// A raw client that joins the group through the protocol and leaves at once:
// 10,000 of them, with 100,000 connections served meanwhile.
int JoinAndLeave(const std::string& socket_path, uint16_t port) {
  int link = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  strcpy(addr.sun_path, socket_path.c_str());
  if (connect(link, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(link);
    return -1;
  }
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct {
    rp_header h;
    rp_bind_request b;
  } msg{};
  msg.h = rp_request_header(RP_OP_BIND, sizeof(rp_bind_request), 0);
  msg.b.address.family = AF_INET;
  msg.b.address.port = port;
  uint32_t lo = htonl(INADDR_LOOPBACK);
  memcpy(msg.b.address.addr, &lo, 4);
  msg.b.protocol = RP_PROTO_TCP;
  int status = -1;
  if (SendWithFds(link, &msg, sizeof(msg), {s}) >= 0) {
    rp_header reply{};
    char buf[sizeof(rp_header) + sizeof(rp_member_reply)];
    struct iovec riov = {buf, sizeof(buf)};
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * 3)];
    struct msghdr r {};
    r.msg_iov = &riov;
    r.msg_iovlen = 1;
    r.msg_control = control;
    r.msg_controllen = sizeof(control);
    if (recvmsg(link, &r, MSG_CMSG_CLOEXEC) >= static_cast<ssize_t>(sizeof(rp_header))) {
      memcpy(&reply, buf, sizeof(reply));
      status = reply.status;
      for (struct cmsghdr* rc = CMSG_FIRSTHDR(&r); rc != nullptr; rc = CMSG_NXTHDR(&r, rc)) {
        int* fds = reinterpret_cast<int*>(CMSG_DATA(rc));
        for (size_t i = 0; i < (rc->cmsg_len - CMSG_LEN(0)) / sizeof(int); ++i) close(fds[i]);
      }
    }
  }
  close(s);
  close(link);
  return status;
}

TEST_F(ChurnTest, NoFdLeakAfterAHundredThousandConnectionsAndTenThousandJoins) {
  std::vector<MemberOptions> m;
  for (int i = 0; i < 2; ++i) m.push_back(ShimmedMember({TcpMemberPath(), "--host", "127.0.0.1"}, absl::StrCat("m", i), dir_.path(), *broker_));
  absl::StatusOr<std::vector<MemberProcess>> members = StartMemberGroup(std::move(m));
  ASSERT_TRUE(members.ok()) << members.status();
  ASSERT_TRUE(broker_->WaitForMembers(2).ok());
  pid_t broker_pid = broker_->process().pid();
  absl::StatusOr<int> broker_before = SettledFdCount(broker_pid);
  absl::StatusOr<int> member_before = SettledFdCount((*members)[0].process.pid());
  ASSERT_TRUE(broker_before.ok() && member_before.ok());

  TcpLoadResult result;
  std::thread load([&] {
    TcpLoadOptions o;
    o.port = (*members)[0].port;
    o.connections = 100000;
    o.concurrency = 16;
    result = RunTcpLoad(o);
  });
  int joined = 0, refused = 0;
  for (int i = 0; i < 10000; ++i) {
    int status = JoinAndLeave(broker_->socket_path(), (*members)[0].port);
    if (status == 0) ++joined;
    else ++refused;
  }
  load.join();
  EXPECT_EQ(result.successes, 100000) << result.Summary();
  EXPECT_EQ(joined, 10000) << refused << " joins refused";
  ASSERT_TRUE(broker_->WaitForMembers(2).ok());
  absl::StatusOr<int> broker_after = SettledFdCount(broker_pid);
  absl::StatusOr<int> member_after = SettledFdCount((*members)[0].process.pid());
  ASSERT_TRUE(broker_after.ok() && member_after.ok());
  EXPECT_EQ(*broker_after, *broker_before) << "broker fds";
  EXPECT_EQ(*member_after, *member_before) << "member fds";
  std::cout << "fd hygiene: 100000 connections, " << joined << " joins and leaves; broker fds " << *broker_before
            << " -> " << *broker_after << ", member fds " << *member_before << " -> " << *member_after << "\n";
}

}  // namespace
}  // namespace reuseport::testing
