// The shim never stops a program for its own reasons. Where the C library
// lacks a function every glibc since 2.12 has, or RTLD_NEXT finds the shim's
// own hook, it steps aside: the program runs as on the old kernel and the shim
// says so once. Where it lacks an optional one (sendmmsg before glibc 2.14),
// the system call stands in and nothing changes. (Until this was fixed, both
// cases called abort() while resolving, before main.)
//
// programs/dlsym_filter.c, preloaded before the shim, plays such a C library.
#include <sys/wait.h>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "load_client.h"
#include "member_paths.h"
#include "reuseport_fixture.h"

namespace reuseport::testing {
namespace {

int Count(const std::string& haystack, const std::string& needle) {
  int n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

class ShimStepsAsideTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<BrokerProcess> broker = BrokerProcess::Start(dir_.path());
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_.emplace(std::move(*broker));
  }

  // A member of the old kernel, with the shim behind the filter; `filter`
  // is REUSEPORT_TEST_HIDE or REUSEPORT_TEST_FIND_SELF.
  // It never asks for SO_REUSEPORT (the old kernel refuses that); the shim
  // would share the port through REUSEPORT_PORTS.
  MemberOptions Member(const std::string& id, uint16_t port, const std::string& filter, const std::string& names) {
    MemberOptions m = ShimmedMember({TcpMemberPath(), "--no-reuseport", "--port", absl::StrCat(port)}, id,
                                    dir_.path(), *broker_);
    m.process.env.push_back({"LD_PRELOAD", absl::StrCat(DLSYM_FILTER, " ", ShimPath())});
    m.process.env.push_back({"REUSEPORT_PORTS", absl::StrCat(port)});
    m.process.env.push_back({filter, names});
    return m;
  }

  // The shim speaks once per program image: the legacy-kernel runner, which
  // the environment preloads it into too, then the member it execs.
  static void ExpectSaidOncePerImage(const std::string& err, const std::string& what) {
    int n = Count(err, what);
    EXPECT_TRUE(n == 1 || n == 2) << n << " times: " << what << "\n" << err;
  }

  // Two copies on one port: the first serves, the second meets the old
  // kernel's EADDRINUSE, and each says once why the shim stood aside.
  void ExpectOldKernel(const std::string& filter, const std::string& names, const std::string& reason) {
    uint16_t port = FreeLoopbackPort();
    ASSERT_NE(port, 0);
    absl::StatusOr<MemberProcess> first = StartMember(Member("first", port, filter, names));
    ASSERT_TRUE(first.ok()) << first.status();
    absl::StatusOr<MemberProcess> second = StartMember(Member("second", port, filter, names));
    ASSERT_FALSE(second.ok()) << "a second copy bound the port: the shim did not step aside";
    EXPECT_NE(std::string(second.status().message()).find("EADDRINUSE"), std::string::npos) << second.status();

    TcpLoadOptions load;
    load.port = first->port;
    load.connections = 50;
    TcpLoadResult result = RunTcpLoad(load);
    EXPECT_EQ(result.successes, 50) << result.Summary();
    EXPECT_EQ(result.per_member["first"], 50) << result.Summary();

    std::string err = first->process.ReadStderr();
    ExpectSaidOncePerImage(err, "stepping aside");
    ExpectSaidOncePerImage(err, reason);
    ASSERT_TRUE(first->process.Signal(SIGTERM).ok());
    absl::StatusOr<int> status = first->process.Wait(absl::Seconds(10));
    ASSERT_TRUE(status.ok());
    EXPECT_FALSE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGABRT) << DescribeWaitStatus(*status);
    absl::StatusOr<ctl::JsonValue> doc = broker_->Status();
    ASSERT_TRUE(doc.ok());
    EXPECT_EQ((*doc)["groups"].array.size(), 0u) << "a member that stepped aside never joined";
  }

  TempDir dir_ = MakeTestDir();
  std::optional<BrokerProcess> broker_;
};

TEST_F(ShimStepsAsideTest, ARequiredFunctionMissingMeansOldKernelNotAbort) {
  ExpectOldKernel("REUSEPORT_TEST_HIDE", "bind", "cannot resolve bind");
}

TEST_F(ShimStepsAsideTest, RtldNextFindingTheShimItselfMeansOldKernelNotAbort) {
  ExpectOldKernel("REUSEPORT_TEST_FIND_SELF", "socket", "cannot resolve socket: RTLD_NEXT returned the shim's own hook");
}

TEST_F(ShimStepsAsideTest, SendmmsgMissingFromLibcIsTheSystemCall) {
  SubprocessOptions p;
  p.argv = {SENDMMSG_PROBE};
  WithShim(&p, broker_->socket_path());
  UnderLegacyKernel(&p);
  p.env.push_back({"LD_PRELOAD", absl::StrCat(DLSYM_FILTER, " ", ShimPath())});
  p.env.push_back({"REUSEPORT_TEST_HIDE", "sendmmsg"});
  absl::StatusOr<Subprocess> probe = Subprocess::Start(p);
  ASSERT_TRUE(probe.ok()) << probe.status();
  absl::StatusOr<int> status = probe->Wait(absl::Seconds(20));
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << DescribeWaitStatus(*status) << "\n" << probe->ReadStdout() << probe->ReadStderr();
  EXPECT_EQ(probe->ReadStdout(), "sendmmsg 2 received 2\n");
  EXPECT_EQ(probe->ReadStderr(), "") << "an optional function missing is not worth a word";

  // And the shim still shares ports in that process.
  uint16_t port = FreeLoopbackPort();
  ASSERT_NE(port, 0);
  absl::StatusOr<MemberProcess> first = StartMember(Member("first", port, "REUSEPORT_TEST_HIDE", "sendmmsg"));
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<MemberProcess> second = StartMember(Member("second", port, "REUSEPORT_TEST_HIDE", "sendmmsg"));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(broker_->WaitForMembers(2).ok());
}

}  // namespace
}  // namespace reuseport::testing
