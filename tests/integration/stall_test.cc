// A member that stops consuming never stalls its group: stopped (SIGSTOP), or
// at its fd limit (accept() fails with EMFILE, as on the kernel), its queued
// connections go to the other members after --stall.
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

// The broker's stall period, set explicitly so the bounds below follow it.
constexpr int kStallMs = 200;

class StallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BrokerOptions options;
    options.extra_flags = {"--stall", absl::StrCat(kStallMs, "ms")};
    absl::StatusOr<BrokerProcess> b = BrokerProcess::Start(dir_.path(), options);
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
  EXPECT_EQ(failed, 0) << "a connection waited 10 s: what was queued for the stopped member was never taken back";
  double p50 = Percentile(stalled, 0.5), p99 = Percentile(stalled, 0.99), max = Percentile(stalled, 1.0);
  double baseline_p90 = Percentile(baseline, 0.9), baseline_p99 = Percentile(baseline, 0.99);
  double p90 = Percentile(stalled, 0.9);
  // Connections hashed to the stopped member (a quarter) wait until the
  // broker sees the stall (kStallMs without progress) and hands them to the
  // others; then it routes around the member, looking again after 200, 400,
  // 800... ms. So a few connections per look (at most one per client thread)
  // wait about one stall period and the rest about as long as with no member
  // stopped. Checked against the same clients' baseline, so a loaded machine
  // moves both:
  //  - p90: the stopped member's share goes elsewhere without waiting. Were
  //    each of its connections to wait for a stall, a quarter would, and p90
  //    would be a stall period above the baseline's; half a period is the line.
  //  - p99: those that wait, wait about one stall period. A slow run makes
  //    more looks (a few dozen delayed connections in 1000 under a
  //    sanitizer), so p99 may be one of them; the bound allows one period for
  //    that and one for scheduling on a loaded 2-vCPU machine.
  //  - a connection never taken back would fail after 10 s (above).
  // The maximum, which one SYN retransmission (1 s) can make, is recorded only.
  EXPECT_LT(p90, baseline_p90 + kStallMs / 2.0)
      << "p50 " << p50 << " p90 " << p90 << " ms; baseline p90 " << baseline_p90 << " ms";
  EXPECT_LT(p99, baseline_p99 + 2.0 * kStallMs)
      << "p50 " << p50 << " p99 " << p99 << " max " << max << " ms; baseline p99 " << baseline_p99 << " ms";
  absl::StatusOr<ctl::JsonValue> status = broker_->Status();
  ASSERT_TRUE(status.ok());
  double stolen = 0, stalls = 0;
  for (const auto& g : (*status)["groups"].array) {
    for (const auto& mm : g["members"].array) {
      stolen += mm["stolen"].AsNumber();
      stalls += mm["stalls"].AsNumber();
    }
  }
  EXPECT_GT(stolen, 0);
  int delayed = static_cast<int>(std::count_if(stalled.begin(), stalled.end(), [](double ms) { return ms >= kStallMs; }));
  RecordProperty("baseline_p50_ms", absl::StrCat(Percentile(baseline, 0.5)));
  RecordProperty("baseline_p99_ms", absl::StrCat(Percentile(baseline, 0.99)));
  RecordProperty("stopped_member_p50_ms", absl::StrCat(p50));
  RecordProperty("stopped_member_p99_ms", absl::StrCat(p99));
  RecordProperty("stopped_member_max_ms", absl::StrCat(max));
  RecordProperty("connections_taken_back", absl::StrCat(stolen));
  RecordProperty("stalls_seen", absl::StrCat(stalls));
  RecordProperty("connections_waiting_a_stall_period", delayed);
  std::cout << "SIGSTOP'ed member: p50/p90/p99/max " << p50 << "/" << p90 << "/" << p99 << "/" << max
            << " ms (baseline p50/p90/p99 " << Percentile(baseline, 0.5) << "/" << baseline_p90 << "/" << baseline_p99
            << " ms); " << stolen << " connections taken back in " << stalls << " stall(s); " << delayed
            << " connections waited " << kStallMs << " ms or more\n";
}

TEST_F(StallTest, MemberAtItsFdLimitGetsEmfileAndItsConnectionsGoElsewhere) {
  std::vector<MemberOptions> m;
  MemberOptions emfile = ShimmedMember({REUSEPORT_TEST_LIFECYCLE_MEMBER, "--scenario", "emfile"}, "emfile", dir_.path(), *broker_);
  // It opens fds until EMFILE: under a small limit of its own, not the host's
  // (up to 1M, slow to use up and able to hit the system-wide ENFILE first).
  emfile.process.open_files_limit = 256;
  m.push_back(std::move(emfile));
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
