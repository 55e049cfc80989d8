// What integration tests need to run the real thing: a reuseportd process
// under the legacy-kernel runner, member programs under the runner with the
// shim preloaded, and the broker's own view (status JSON).
#ifndef REUSEPORT_TESTS_INTEGRATION_REUSEPORT_FIXTURE_H_
#define REUSEPORT_TESTS_INTEGRATION_REUSEPORT_FIXTURE_H_

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "json_value.h"
#include "member_process.h"
#include "subprocess.h"
#include "temp_dir.h"

namespace reuseport::testing {

// Paths of the built programs (set by CMake).
std::string BrokerPath();
std::string ShimPath();
std::string LegacyKernelPath();
std::string CtlPath();
std::string RunPath();

// The kernel every emulation test pretends to run on.
inline constexpr char kLegacyKernel[] = "3.2";

// Prefixes argv with `reuseport-legacy-kernel --kernel <kernel> --`.
void UnderLegacyKernel(SubprocessOptions* options, const std::string& kernel = kLegacyKernel);

// Preloads the shim and points it at a broker.
void WithShim(SubprocessOptions* options, const std::string& socket_path, const std::string& mode = "auto",
              const std::string& ports = "");

struct BrokerOptions {
  std::vector<std::string> extra_flags;
  // A command the broker (with the legacy-kernel runner) runs under, e.g.
  // {"unshare", "--user", "--map-root-user", "--"}: it must exec its arguments.
  std::vector<std::string> wrapper;
  bool legacy_kernel = true;
  // The kernel the runner pretends for the broker (uname included).
  std::string kernel = kLegacyKernel;
  std::string log_level = "info";
};

class BrokerProcess {
 public:
  // Starts reuseportd on <dir>/reuseportd.sock and waits for its READY=1.
  static absl::StatusOr<BrokerProcess> Start(const std::string& dir, const BrokerOptions& options = {});

  const std::string& socket_path() const { return socket_path_; }
  Subprocess& process() { return process_; }

  // The broker's status document (RP_STATUS_JSON), parsed.
  absl::StatusOr<ctl::JsonValue> Status() const;
  // Waits until the broker reports `members` members in total (bounded).
  absl::Status WaitForMembers(int members, absl::Duration timeout = absl::Seconds(10)) const;

 private:
  Subprocess process_;
  std::string socket_path_;
  explicit BrokerProcess(Subprocess p) : process_(std::move(p)) {}
};

// Blocks until the process is stopped (state T in /proc), e.g. after SIGSTOP,
// which takes effect only when the process next runs.
absl::Status WaitUntilStopped(pid_t pid, absl::Duration timeout = absl::Seconds(5));

// The broker's open fds once transient ones (a status link closing) are gone:
// the smallest count seen over a quiet stretch of reads.
absl::StatusOr<int> SettledFdCount(pid_t pid);

// A member program (tests/members or any argv) under the legacy kernel with the shim.
MemberOptions ShimmedMember(const std::vector<std::string>& argv, const std::string& id, const std::string& dir,
                            const BrokerProcess& broker, const std::string& mode = "auto");

// A port free just now for both TCP and UDP on every IPv4 address, outside
// the ephemeral range (ip_local_port_range, both ends), so that no client
// socket of a test running alongside is given it as its source port (servers
// such as dnsmasq bind both protocols); 0 if none. `type` is kept for the
// callers' clarity: the port is free for both.
uint16_t FreeLoopbackPort(int type = SOCK_STREAM);

// The same for a port below 1024 (binding it needs root), other than
// `other_than`; 0 if every one is taken, which a test reports as a skip.
uint16_t FreePrivilegedPort(uint16_t other_than = 0);

// A temporary directory every uid may write (members may run as nobody).
TempDir MakeTestDir();

// The requests each member logged (one token per line), by member id.
absl::StatusOr<std::map<std::string, std::vector<std::string>>> ReadMemberLogs(const std::vector<MemberProcess>& members);

// Checks "served exactly once": every token of the load appears in exactly one
// member's log and nothing else does. Returns a description of what is wrong.
std::string CheckServedExactlyOnce(const std::vector<std::string>& tokens,
                                   const std::map<std::string, std::vector<std::string>>& logs);

// Members' shares as "id=25.1% ..." for messages, and whether every share is in [lo, hi].
std::string DescribeShares(const std::map<std::string, int>& per_member, int total);
bool SharesWithin(const std::map<std::string, int>& per_member, int total, double lo, double hi, size_t members);

// What the broker did to the TCP connections of the groups on one port besides
// following the hash: it hands a member's share to the others while that
// member is full (--member_window) or stalled (--stall: on a loaded
// machine a member waiting 200 ms for a CPU counts), and takes back what was
// queued for a stalled one. Counters summed over the members, from the
// broker's status; the difference of two readings is what happened between.
struct Rerouted {
  int64_t redirected = 0;  // connections the hash gave one member and another served
  int64_t stolen = 0;      // of those, taken back from a stalled member's queue
  int64_t stalls = 0;      // times a member was found stalled
  Rerouted operator-(const Rerouted& before) const {
    return {redirected - before.redirected, stolen - before.stolen, stalls - before.stalls};
  }
  std::string Describe() const;
};
absl::StatusOr<Rerouted> ReadRerouted(const std::string& socket_path, uint16_t port);

// Fair shares as the hash made them: every member's count within
// [lo, hi] * total. Connections the broker rerouted during the run were not
// the hash's choice and may have moved between any two members, so each bound
// is widened by their number (and the message says so); with nothing
// rerouted the bounds are exact.
::testing::AssertionResult SharesFair(const std::map<std::string, int>& per_member, int total, double lo, double hi,
                                      size_t members, const Rerouted& during);
// EXPECTs SharesFair, and prints and records (RecordProperty "rerouted") what
// the broker rerouted.
void ExpectSharesFair(const std::map<std::string, int>& per_member, int total, double lo, double hi, size_t members,
                      const Rerouted& during);

// Copies started at once: a loser of the bind race may reach the broker before
// the winner's group exists, and waits for it (--join_wait, 500 ms by default).
// On a loaded machine the winner can be off a CPU for longer than that, which
// would turn a working wait into a refusal, so such tests give the broker a
// wait no scheduling delay reaches; it ends as soon as the group exists, and
// stays inside the members' 10 s ready timeout.
inline constexpr char kJoinWaitFlag[] = "--join_wait=5s";

// The base of the group tests: a broker of its own per test (started in
// SetUp with broker_options_, which a derived fixture's constructor may set),
// and members started under it, shimmed, on the pretend old kernel.
class GroupTest : public ::testing::Test {
 protected:
  void SetUp() override;

  // A member program under this test's broker, logging into the test's directory.
  MemberOptions Member(std::vector<std::string> argv, const std::string& id);

  // Starts `members` on one port (0: a free one), waits for each to be ready
  // and for the broker to count every member this test started. Empty (with
  // a failure recorded) if any did not start.
  std::vector<MemberProcess> StartMembers(std::vector<MemberOptions> members, uint16_t port = 0);

  BrokerOptions broker_options_;  // for SetUp
  TempDir dir_ = MakeTestDir();
  std::optional<BrokerProcess> broker_;
  int members_ = 0;  // started through StartMembers, for readiness
};

}  // namespace reuseport::testing

#endif  // REUSEPORT_TESTS_INTEGRATION_REUSEPORT_FIXTURE_H_
