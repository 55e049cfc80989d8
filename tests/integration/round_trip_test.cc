// The shim never holds its lock across a round trip to the broker: with the
// broker stopped (SIGSTOP) while one thread of a program waits in bind() for
// its answer, the program's other threads close and fork at once, and a
// signal reaches the waiting thread at once.
#include <signal.h>

#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "readiness.h"
#include "reuseport_fixture.h"

namespace reuseport::testing {
namespace {

// "close_ms=1 fork_ms=0 ..." as a map.
std::map<std::string, std::string> ParseReport(const std::string& text) {
  std::map<std::string, std::string> out;
  for (absl::string_view field : absl::StrSplit(text, absl::ByAnyChar(" \n"), absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(field, absl::MaxSplits('=', 1));
    out[kv.first] = kv.second;
  }
  return out;
}

long Number(const std::map<std::string, std::string>& report, const std::string& key) {
  long v = -1;
  auto it = report.find(key);
  if (it == report.end() || !absl::SimpleAtoi(it->second, &v)) return -1;
  return v;
}

TEST(RoundTripTest, StoppedBrokerDelaysNoOtherThreadsCloseForkOrSignal) {
  TempDir dir = MakeTestDir();
  absl::StatusOr<BrokerProcess> broker = BrokerProcess::Start(dir.path());
  ASSERT_TRUE(broker.ok()) << broker.status();
  std::string go = dir.File("go"), report = dir.File("report");
  MemberOptions probe = ShimmedMember({REUSEPORT_TEST_STALLED_BROKER_PROBE, "--port", "0", "--go-file", go,
                                       "--report", report},
                                      "probe", dir.path(), *broker);
  absl::StatusOr<MemberProcess> member = StartMember(std::move(probe));
  ASSERT_TRUE(member.ok()) << member.status();
  ASSERT_TRUE(broker->WaitForMembers(1).ok());

  ASSERT_TRUE(broker->process().Signal(SIGSTOP).ok());
  ASSERT_TRUE(WaitUntilStopped(broker->process().pid()).ok());
  { std::ofstream(go) << "go\n"; }
  absl::StatusOr<int> exited = member->process.Wait(absl::Seconds(30));
  broker->process().Signal(SIGCONT).IgnoreError();
  ASSERT_TRUE(exited.ok()) << exited.status();
  ASSERT_TRUE(WIFEXITED(*exited) && WEXITSTATUS(*exited) == 0)
      << DescribeWaitStatus(*exited) << "\n" << member->process.ReadStderr();
  absl::StatusOr<std::string> text = ReadFile(report);
  ASSERT_TRUE(text.ok()) << text.status();
  std::map<std::string, std::string> r = ParseReport(*text);
  // The bind waited for the broker's answer until the shim gave up (3 s):
  // the others must not have waited with it. 250 ms leaves room for a busy machine.
  EXPECT_GE(Number(r, "bind_ms"), 1000) << *text;
  EXPECT_EQ(r["bind_errno"], "EADDRINUSE") << "no answer: the old kernel's answer\n" << *text;
  EXPECT_GE(Number(r, "close_ms"), 0) << *text;
  EXPECT_LT(Number(r, "close_ms"), 250) << *text;
  EXPECT_GE(Number(r, "fork_ms"), 0) << *text;
  EXPECT_LT(Number(r, "fork_ms"), 250) << *text;
  EXPECT_GE(Number(r, "signal_ms"), 0) << *text;
  EXPECT_LT(Number(r, "signal_ms"), 250) << *text;
  RecordProperty("report", *text);
}

}  // namespace
}  // namespace reuseport::testing
