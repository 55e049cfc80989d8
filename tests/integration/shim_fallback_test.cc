// With no broker to reach, the shim behaves exactly like the old kernel and
// says so once on stderr; with REUSEPORT_MODE=off it does nothing at all.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "host_features.h"
#include "member_paths.h"
#include "reuseport_fixture.h"

namespace reuseport::testing {
namespace {

int Count(const std::string& haystack, const std::string& needle) {
  int n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

// A Python program that asks for SO_REUSEPORT on three sockets and reports
// what the kernel (or the shim) answered.
constexpr char kThreeSockets[] = R"(
import socket
for i in range(3):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        print("set-ok")
    except OSError as e:
        print("set-errno", e.errno)
)";

// The shim's limits on a broker round trip (shim/broker_link.cc).
constexpr absl::Duration kShimConnectTimeout = absl::Seconds(1);
constexpr absl::Duration kShimReplyTimeout = absl::Seconds(3);

class ShimFallbackTest : public ::testing::Test {
 protected:
  SubprocessOptions Python(const std::string& code, const std::string& socket_path, const std::string& mode) {
    SubprocessOptions p;
    p.argv = {PythonPath(), "-c", code};
    WithShim(&p, socket_path, mode);
    UnderLegacyKernel(&p);
    return p;
  }
  TempDir dir_ = MakeTestDir();
};

TEST_F(ShimFallbackTest, NoBrokerMeansOldKernelBehaviourAndOneMessage) {
  REUSEPORT_REQUIRE_PROGRAM(PythonPath(), "python3");
  absl::StatusOr<Subprocess> p = Subprocess::Start(Python(kThreeSockets, dir_.path() + "/absent.sock", "auto"));
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(p->Wait(absl::Seconds(20)).ok());
  EXPECT_EQ(Count(p->ReadStdout(), "set-errno 92"), 3) << p->ReadStdout();  // ENOPROTOOPT, as on 3.2
  std::string err = p->ReadStderr();
  EXPECT_EQ(Count(err, "broker not reachable"), 1) << err;
}

TEST_F(ShimFallbackTest, ListedPortWithoutBrokerBindsOnceThenAddressInUse) {
  // REUSEPORT_PORTS with nobody to share through: the first bind works, the
  // second fails, as two copies of a legacy server would on this kernel.
  MemberOptions first;
  first.process.argv = {TcpMemberPath(), "--no-reuseport"};
  WithShim(&first.process, dir_.path() + "/absent.sock", "auto");
  UnderLegacyKernel(&first.process);
  first.id = "first";
  first.dir = dir_.path();
  absl::StatusOr<MemberProcess> one = StartMember(first);
  ASSERT_TRUE(one.ok()) << one.status();
  MemberOptions second;
  second.process.argv = {TcpMemberPath(), "--no-reuseport", "--port", absl::StrCat(one->port)};
  WithShim(&second.process, dir_.path() + "/absent.sock", "auto", absl::StrCat(one->port));
  UnderLegacyKernel(&second.process);
  second.id = "second";
  second.dir = dir_.path();
  absl::StatusOr<MemberProcess> two = StartMember(second);
  ASSERT_FALSE(two.ok());
  EXPECT_NE(std::string(two.status().message()).find("EADDRINUSE"), std::string::npos) << two.status();
  EXPECT_NE(std::string(two.status().message()).find("broker not reachable"), std::string::npos) << two.status();
}

TEST_F(ShimFallbackTest, AHungBrokerDelaysBindABoundedTimeThenOldKernelBehaviour) {
  REUSEPORT_REQUIRE_PROGRAM(PythonPath(), "python3");
  absl::StatusOr<BrokerProcess> broker = BrokerProcess::Start(dir_.path());
  ASSERT_TRUE(broker.ok());
  ASSERT_TRUE(broker->process().Signal(SIGSTOP).ok());
  ASSERT_TRUE(WaitUntilStopped(broker->process().pid()).ok());
  constexpr char kBind[] = R"(
import socket, time
t = time.time()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind(("127.0.0.1", 0))
s.listen()
print("bound", s.getsockname()[1], "after %.3f s" % (time.time() - t))
)";
  absl::StatusOr<Subprocess> p = Subprocess::Start(Python(kBind, broker->socket_path(), "auto"));
  ASSERT_TRUE(p.ok());
  absl::StatusOr<int> status = p->Wait(absl::Seconds(20));
  ASSERT_TRUE(broker->process().Signal(SIGCONT).ok());
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << p->ReadStderr();
  // The time the program itself saw from socket() to listen(), as it printed
  // it: Python's start-up, slow on a loaded machine, is not the shim's.
  std::string out = p->ReadStdout();
  double seconds = -1;
  size_t at = out.find(" after ");
  ASSERT_TRUE(at != std::string::npos && absl::SimpleAtod(out.substr(at + 7, out.find(" s", at + 7) - at - 7), &seconds))
      << "the first bind works, as on the old kernel; the program said: " << out;
  // The shim waits at most 1 s to connect (a full backlog) and 3 s for a
  // reply (kConnectTimeoutMs, kReplyTimeoutMs in shim/broker_link.cc); a
  // stopped broker accepts the connection into its backlog and never
  // replies, so about 3 s. One more second covers a loaded machine.
  EXPECT_LT(absl::Seconds(seconds), kShimConnectTimeout + kShimReplyTimeout + absl::Seconds(1))
      << "bounded by the shim's timeouts; the program said: " << out;
  EXPECT_GE(absl::Seconds(seconds), kShimReplyTimeout - absl::Milliseconds(100))
      << "the shim waited for the broker's reply; the program said: " << out;
  RecordProperty("bind_seconds", absl::StrCat(seconds));
  EXPECT_NE(p->ReadStderr().find("broker not reachable"), std::string::npos) << p->ReadStderr();
}

TEST_F(ShimFallbackTest, ModeOffLeavesTheKernelAlone) {
  REUSEPORT_REQUIRE_PROGRAM(PythonPath(), "python3");
  absl::StatusOr<BrokerProcess> broker = BrokerProcess::Start(dir_.path());
  ASSERT_TRUE(broker.ok());
  absl::StatusOr<Subprocess> p = Subprocess::Start(Python(kThreeSockets, broker->socket_path(), "off"));
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(p->Wait(absl::Seconds(20)).ok());
  EXPECT_EQ(Count(p->ReadStdout(), "set-errno 92"), 3) << p->ReadStdout();
  EXPECT_EQ(p->ReadStderr(), "");
}

TEST_F(ShimFallbackTest, AutoModeUsesTheKernelsOwnWhereItWorks) {
  REUSEPORT_REQUIRE_PROGRAM(PythonPath(), "python3");
  // Not under the legacy runner: this kernel has SO_REUSEPORT, so the shim
  // stays out of the way and no broker is needed.
  SubprocessOptions p;
  p.argv = {PythonPath(), "-c", kThreeSockets};
  WithShim(&p, dir_.path() + "/absent.sock", "auto");
  absl::StatusOr<Subprocess> s = Subprocess::Start(p);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(s->Wait(absl::Seconds(20)).ok());
  EXPECT_EQ(Count(s->ReadStdout(), "set-ok"), 3) << s->ReadStdout();
  EXPECT_EQ(s->ReadStderr(), "");
}

}  // namespace
}  // namespace reuseport::testing
