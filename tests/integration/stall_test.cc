// A member that stops consuming never stalls its group: stopped (SIGSTOP), or
// at its fd limit (accept() fails with EMFILE, as on the kernel), its queued
// connections go to the other members after --stall_ms.
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "load_client.h"
#include "member_paths.h"
#include "reuseport_fixture.h"

namespace reuseport::testing {
namespace {

// Milliseconds from connect() to the reply line, for `count` connections from
// `threads` threads; -1 for a connection that failed.
std::vector<double> TimedConnections(uint16_t port, int threads, int count) {
  std::vector<double> all;
  std::mutex mu;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = t; i < count; i += threads) {
        absl::Time start = absl::Now();
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a {};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        double ms = -1;
        std::string hello = absl::StrCat("HELLO s", i, "\n");
        if (connect(fd, reinterpret_cast<struct sockaddr*>(&a), sizeof(a)) == 0 &&
            write(fd, hello.data(), hello.size()) == static_cast<ssize_t>(hello.size())) {
          struct pollfd p = {fd, POLLIN, 0};
          char buf[128];
          if (poll(&p, 1, 10000) == 1 && read(fd, buf, sizeof(buf)) > 0) ms = absl::ToDoubleMilliseconds(absl::Now() - start);
        }
        close(fd);
        std::lock_guard<std::mutex> lock(mu);
        all.push_back(ms);
      }
    });
  }
  for (auto& w : workers) w.join();
  return all;
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5))];
}

class StallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<BrokerProcess> b = BrokerProcess::Start(dir_.path());
    ASSERT_TRUE(b.ok()) << b.status();
    broker_.emplace(std::move(*b));
  }
  TempDir dir_ = MakeTestDir();
  std::optional<BrokerProcess> broker_;
};

TEST_F(StallTest, StoppedMemberDelaysItsShareOnlyUntilTheOthersTakeIt) {
  std::vector<MemberOptions> m;
  for (int i = 0; i < 4; ++i) m.push_back(ShimmedMember({TcpMemberPath()}, absl::StrCat("m", i), dir_.path(), *broker_));
  absl::StatusOr<std::vector<MemberProcess>> members = StartMemberGroup(std::move(m));
  ASSERT_TRUE(members.ok()) << members.status();
  ASSERT_TRUE(broker_->WaitForMembers(4).ok());
  std::vector<double> baseline = TimedConnections((*members)[0].port, 4, 1000);

  ASSERT_TRUE((*members)[3].process.Signal(SIGSTOP).ok());
  ASSERT_TRUE(WaitUntilStopped((*members)[3].process.pid()).ok());
  std::vector<double> stalled = TimedConnections((*members)[0].port, 4, 1000);
  ASSERT_TRUE((*members)[3].process.Signal(SIGCONT).ok());

  int failed = static_cast<int>(std::count(stalled.begin(), stalled.end(), -1.0));
  EXPECT_EQ(failed, 0);
  double p50 = Percentile(stalled, 0.5), p99 = Percentile(stalled, 0.99), max = Percentile(stalled, 1.0);
  // Connections hashed to the stopped member wait for the stall to be seen
  // (--stall_ms 200) and are then served by the others: bounded, not forever.
  EXPECT_LT(max, 2000) << "p50 " << p50 << " p99 " << p99;
  absl::StatusOr<ctl::JsonValue> status = broker_->Status();
  ASSERT_TRUE(status.ok());
  double stolen = 0;
  for (const auto& g : (*status)["groups"].array) {
    for (const auto& mm : g["members"].array) stolen += mm["stolen"].AsNumber();
  }
  EXPECT_GT(stolen, 0);
  RecordProperty("baseline_p50_ms", absl::StrCat(Percentile(baseline, 0.5)));
  RecordProperty("baseline_p99_ms", absl::StrCat(Percentile(baseline, 0.99)));
  RecordProperty("stopped_member_p50_ms", absl::StrCat(p50));
  RecordProperty("stopped_member_p99_ms", absl::StrCat(p99));
  RecordProperty("stopped_member_max_ms", absl::StrCat(max));
  RecordProperty("connections_taken_back", absl::StrCat(stolen));
  std::cout << "SIGSTOP'ed member: p50/p99/max " << p50 << "/" << p99 << "/" << max << " ms (baseline p50/p99 "
            << Percentile(baseline, 0.5) << "/" << Percentile(baseline, 0.99) << " ms); " << stolen
            << " connections taken back\n";
}

TEST_F(StallTest, MemberAtItsFdLimitGetsEmfileAndItsConnectionsGoElsewhere) {
  std::vector<MemberOptions> m;
  m.push_back(ShimmedMember({REUSEPORT_TEST_LIFECYCLE_MEMBER, "--scenario", "emfile"}, "emfile", dir_.path(), *broker_));
  m.push_back(ShimmedMember({TcpMemberPath(), "--host", "127.0.0.1"}, "plain", dir_.path(), *broker_));
  absl::StatusOr<std::vector<MemberProcess>> members = StartMemberGroup(std::move(m));
  ASSERT_TRUE(members.ok()) << members.status();
  ASSERT_TRUE(broker_->WaitForMembers(2).ok());
  TcpLoadOptions load;
  load.port = (*members)[0].port;
  load.connections = 400;
  load.concurrency = 8;
  TcpLoadResult r = RunTcpLoad(load);
  EXPECT_EQ(r.successes, 400) << r.Summary();
  EXPECT_EQ(r.per_member["plain"], 400) << DescribeShares(r.per_member, r.successes);
  EXPECT_NE((*members)[0].process.ReadStderr().find("accept: EMFILE"), std::string::npos)
      << "accept() failed with EMFILE, as on the kernel";
}

}  // namespace
}  // namespace reuseport::testing
