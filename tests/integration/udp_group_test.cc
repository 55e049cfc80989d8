// UDP groups end to end under reuseport-legacy-kernel --kernel 3.2: datagram
// spread and flow affinity, replies from the shared port, address rules, the
// receive semantics compared with the kernel's own, and unmodified servers
// (Python's socketserver, a recvmmsg/sendmmsg C server, Debian's dnsmasq).
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <memory>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "host_features.h"
#include "load_client.h"
#include "member_paths.h"
#include "readiness.h"
#include "reuseport_fixture.h"

namespace reuseport::testing {
namespace {

class UdpGroupTest : public GroupTest {
 protected:
  std::vector<std::string> Udp(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {UdpMemberPath()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  UdpFlowResult ExpectFlowsSpread(const std::vector<MemberProcess>& members, int flows, const std::string& host,
                                  double lo, double hi) {
    UdpFlowOptions o;
    o.host = host;
    o.port = members.at(0).port;
    o.flows = flows;
    o.datagrams_per_flow = 3;
    UdpFlowResult r = RunUdpFlows(o);
    EXPECT_EQ(r.lost, 0) << r.Summary();
    EXPECT_EQ(r.replies, flows * 3) << r.Summary();
    EXPECT_EQ(r.flows_with_several_responders(), 0) << "every datagram of a flow goes to one member\n" << r.Summary();
    EXPECT_EQ(r.source_mismatches, 0) << "replies leave from the shared address and port\n" << r.Summary();
    EXPECT_TRUE(SharesWithin(r.per_member, r.replies, lo, hi, members.size())) << DescribeShares(r.per_member, r.replies);
    RecordProperty("shares", DescribeShares(r.per_member, r.replies));
    // Sent once each (no retries), so a late reply is a duplicate: a figure.
    RecordProperty("late_replies", r.late_replies);
    return r;
  }
};

class UdpGroupStartedAtOnceTest : public UdpGroupTest {
 protected:
  UdpGroupStartedAtOnceTest() { broker_options_.extra_flags = {kJoinWaitFlag}; }
};

TEST_F(UdpGroupTest, FourMembersSpreadAThousandFlowsWithAffinity) {
  std::vector<MemberOptions> m;
  m.push_back(Member(Udp({"--io", "recvfrom"}), "recvfrom"));
  m.push_back(Member(Udp({"--io", "recvmsg"}), "recvmsg"));
  m.push_back(Member(Udp({"--io", "recvmmsg"}), "recvmmsg"));
  m.push_back(Member(Udp({"--io", "recvfrom"}), "recvfrom2"));
  std::vector<MemberProcess> members = StartMembers(std::move(m));
  ExpectFlowsSpread(members, 1000, "127.0.0.1", 0.15, 0.35);
}

// Members started all at once: one bind wins, and the others' joins may reach
// the broker before the winner's group does. Every one must join (none told
// "no group", which the program would see as EADDRINUSE) and get its share.
TEST_F(UdpGroupStartedAtOnceTest, MembersStartedAtOnceAllJoin) {
  constexpr int kRounds = 10;
  std::vector<std::unique_ptr<ConcurrentStart>> rounds;
  for (int round = 0; round < kRounds; ++round) {
    const uint16_t port = FreeLoopbackPort(SOCK_DGRAM);  // a new group each round
    std::vector<MemberOptions> options;
    for (int i = 0; i < 4; ++i) {
      options.push_back(Member(Udp({"--port", absl::StrCat(port)}), absl::StrCat("r", round, "m", i)));
    }
    rounds.push_back(std::make_unique<ConcurrentStart>(std::move(options)));
    ConcurrentStart& started = *rounds.back();
    ASSERT_TRUE(started.status().ok()) << "round " << round << ": " << started.status();
    members_ += 4;
    absl::Status joined = broker_->WaitForMembers(members_);
    EXPECT_TRUE(joined.ok()) << joined << "\n" << broker_->process().ReadStdout();
    ExpectFlowsSpread(started.members(), 400, "127.0.0.1", 0.15, 0.35);
  }
  absl::StatusOr<ctl::JsonValue> status = broker_->Status();
  ASSERT_TRUE(status.ok());
  EXPECT_EQ((*status)["refusals"]["no-group"].AsNumber(), 0);
  RecordProperty("joins_waited", absl::StrCat((*status)["totals"]["joins_waited"].AsNumber()));
}

TEST_F(UdpGroupTest, PythonSocketserverAndRecvmmsgServerShareAPort) {
  REUSEPORT_REQUIRE_PROGRAM(PythonPath(), "python3");
  std::vector<MemberOptions> m;
  m.push_back(Member({PythonPath(), SocketserverMemberPath(), "--proto", "udp"}, "python"));
  m.push_back(Member(Udp({"--io", "recvmmsg"}), "mmsg"));
  std::vector<MemberProcess> members = StartMembers(std::move(m));
  ExpectFlowsSpread(members, 400, "127.0.0.1", 0.30, 0.70);
}

TEST_F(UdpGroupTest, Ipv6MembersShareAPort) {
  REUSEPORT_SKIP_IF_UNAVAILABLE(Ipv6LoopbackUnavailable());
  std::vector<MemberOptions> m;
  for (int i = 0; i < 3; ++i) m.push_back(Member(Udp({"--host", "::1", "--v6only", "1"}), absl::StrCat("v6_", i)));
  std::vector<MemberProcess> members = StartMembers(std::move(m));
  ExpectFlowsSpread(members, 600, "::1", 0.20, 0.47);
}

TEST_F(UdpGroupTest, Ipv4PrefersIpv4GroupOverDualStack) {
  REUSEPORT_SKIP_IF_UNAVAILABLE(Ipv6LoopbackUnavailable());
  std::vector<MemberOptions> dual;
  for (int i = 0; i < 2; ++i) dual.push_back(Member(Udp({"--host", "::", "--v6only", "0"}), absl::StrCat("dual", i)));
  std::vector<MemberProcess> dual_members = StartMembers(std::move(dual));
  ASSERT_EQ(dual_members.size(), 2u);
  std::vector<MemberOptions> v4;
  for (int i = 0; i < 2; ++i) v4.push_back(Member(Udp({"--host", "0.0.0.0"}), absl::StrCat("v4_", i)));
  std::vector<MemberProcess> v4_members = StartMembers(std::move(v4), dual_members[0].port);
  ASSERT_EQ(v4_members.size(), 2u);
  ExpectFlowsSpread(v4_members, 300, "127.0.0.1", 0.30, 0.70);
  ExpectFlowsSpread(dual_members, 300, "::1", 0.30, 0.70);
}

TEST_F(UdpGroupTest, SpecificAddressBeatsWildcard) {
  std::vector<MemberOptions> wild;
  for (int i = 0; i < 2; ++i) wild.push_back(Member(Udp({"--host", "0.0.0.0"}), absl::StrCat("any", i)));
  std::vector<MemberProcess> wildcard = StartMembers(std::move(wild));
  ASSERT_EQ(wildcard.size(), 2u);
  std::vector<MemberOptions> spec;
  for (int i = 0; i < 2; ++i) spec.push_back(Member(Udp({"--host", "127.0.0.7", "--io", i == 0 ? "recvmsg" : "recvmmsg", "--pktinfo"}), absl::StrCat("lo7_", i)));
  std::vector<MemberProcess> specific = StartMembers(std::move(spec), wildcard[0].port);
  ASSERT_EQ(specific.size(), 2u);
  UdpFlowResult r = ExpectFlowsSpread(specific, 300, "127.0.0.7", 0.30, 0.70);
  EXPECT_EQ(r.reply_suffixes["dst=127.0.0.7"], r.replies) << "pktinfo reports the address the datagram was sent to";
  ExpectFlowsSpread(wildcard, 300, "127.0.0.1", 0.30, 0.70);
}

TEST_F(UdpGroupTest, MemberThatLeavesHandsItsFlowsToTheOthers) {
  std::vector<MemberOptions> m;
  for (int i = 0; i < 4; ++i) m.push_back(Member(Udp({}), absl::StrCat("m", i)));
  std::vector<MemberProcess> members = StartMembers(std::move(m));
  ASSERT_EQ(members.size(), 4u);
  ASSERT_TRUE(members[0].process.Signal(SIGTERM).ok());
  ASSERT_TRUE(members[0].process.Wait(absl::Seconds(10)).ok());
  members_ = 3;
  ASSERT_TRUE(broker_->WaitForMembers(3).ok());
  members.erase(members.begin());
  ExpectFlowsSpread(members, 600, "127.0.0.1", 0.20, 0.47);
}

// Runs udp_semantics.py and returns its port.
absl::StatusOr<std::pair<Subprocess, uint16_t>> StartSemanticsServer(const std::string& dir, const std::string& name,
                                                                      const BrokerProcess* broker) {
  SubprocessOptions p;
  p.argv = {PythonPath(), REUSEPORT_TEST_PROGRAMS "/udp_semantics.py", "--ready-file", dir + "/" + name + ".ready"};
  p.stderr_path = dir + "/" + name + ".stderr";
  if (broker != nullptr) {
    WithShim(&p, broker->socket_path());
    UnderLegacyKernel(&p);
  }
  absl::StatusOr<Subprocess> s = Subprocess::Start(p);
  if (!s.ok()) return s.status();
  if (absl::Status ready = WaitForFile(dir + "/" + name + ".ready", absl::Seconds(10), &*s); !ready.ok()) {
    return absl::UnavailableError(absl::StrCat(ready.message(), ": ", s->ReadStderr()));
  }
  absl::StatusOr<uint16_t> port = ReadReadyPort(dir + "/" + name + ".ready");
  if (!port.ok()) return port.status();
  return std::make_pair(std::move(*s), *port);
}

void Tell(uint16_t port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a {};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sendto(fd, request.data(), request.size(), 0, reinterpret_cast<struct sockaddr*>(&a), sizeof(a));
  close(fd);
}

std::string Ask(uint16_t port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct timeval tv = {10, 0};  // as the load client's reply timeout (load_client.h)
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  // Room for a 65,507-byte request whatever net.core.wmem_default is.
  int send_buffer = 256 * 1024;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &send_buffer, sizeof(send_buffer));
  struct sockaddr_in a {};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sendto(fd, request.data(), request.size(), 0, reinterpret_cast<struct sockaddr*>(&a), sizeof(a));
  char buf[512];
  ssize_t n = recv(fd, buf, sizeof(buf), 0);
  close(fd);
  return n < 0 ? "(no reply)" : std::string(buf, static_cast<size_t>(n));
}

TEST_F(UdpGroupTest, ReceiveSemanticsMatchTheKernelsOwn) {
  REUSEPORT_REQUIRE_PROGRAM(PythonPath(), "python3");
  absl::StatusOr<std::pair<Subprocess, uint16_t>> native = StartSemanticsServer(dir_.path(), "native", nullptr);
  ASSERT_TRUE(native.ok()) << native.status();
  absl::StatusOr<std::pair<Subprocess, uint16_t>> emulated = StartSemanticsServer(dir_.path(), "emulated", &*broker_);
  ASSERT_TRUE(emulated.ok()) << emulated.status();
  std::string big = "BIG " + std::string(65507 - 4, 'x');
  for (size_t i = 4; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  std::vector<std::string> requests = {"TRUNC 0123456789ABCDEF", "TRUELEN abcdefghijklm", "", big,
                                       "PKTINFO", "SMALLCTL", "hello there"};
  for (const std::string& request : requests) {
    std::string want = Ask(native->second, request);
    std::string got = Ask(emulated->second, request);
    EXPECT_NE(want, "(no reply)") << request.substr(0, 20);
    EXPECT_EQ(got, want) << "request: " << request.substr(0, 20);
  }
  Tell(native->second, "QUIT");
  Tell(emulated->second, "QUIT");
  EXPECT_TRUE(native->first.Wait(absl::Seconds(10)).ok());
  EXPECT_TRUE(emulated->first.Wait(absl::Seconds(10)).ok());
}

// dnsmasq answers foo.test with 10.0.0.<instance>, so each answer names the instance.
// One try each, as the load client sends each datagram once; a reply may take
// 10 s, as there (load_client.h): a slow machine is not a lost query.
std::string WriteDigBatch(const std::string& dir, int queries, uint16_t port) {
  std::string path = dir + "/queries.txt";
  std::ofstream out(path);
  for (int i = 0; i < queries; ++i) out << "@127.0.0.1 -p " << port << " q" << i << ".foo.test A +short +tries=1 +time=10\n";
  return path;
}

TEST_F(UdpGroupTest, SeveralDnsmasqInstancesAnswerOnOnePort) {
  REUSEPORT_REQUIRE_PROGRAM("dnsmasq", "dnsmasq-base");
  REUSEPORT_REQUIRE_PROGRAM("dig", "bind9-dnsutils");
  const int instances = 3;
  uint16_t port = FreeLoopbackPort(SOCK_DGRAM);
  std::vector<Subprocess> servers;
  for (int i = 1; i <= instances; ++i) {
    SubprocessOptions p;
    p.argv = {FindProgram("dnsmasq"), "--keep-in-foreground", "--no-resolv", "--no-hosts", "--log-facility=-",
              absl::StrCat("--port=", port), "--listen-address=127.0.0.1", "--bind-interfaces", "--user=root",
              absl::StrCat("--pid-file=", dir_.path(), "/dnsmasq", i, ".pid"),
              absl::StrCat("--address=/foo.test/10.0.0.", i), "--cache-size=0"};
    p.stderr_path = absl::StrCat(dir_.path(), "/dnsmasq", i, ".log");
    WithShim(&p, broker_->socket_path(), "auto", absl::StrCat(port));
    UnderLegacyKernel(&p);
    absl::StatusOr<Subprocess> s = Subprocess::Start(p);
    ASSERT_TRUE(s.ok()) << s.status();
    servers.push_back(std::move(*s));
    // Each instance shares its UDP and its TCP socket: two members.
    absl::Status joined = broker_->WaitForMembers(2 * i, absl::Seconds(15));
    ASSERT_TRUE(joined.ok()) << joined << "\n" << servers.back().ReadStderr();
  }
  const int queries = 300;
  SubprocessOptions dig;
  dig.argv = {FindProgram("dig"), "-f", WriteDigBatch(dir_.path(), queries, port)};
  absl::StatusOr<Subprocess> d = Subprocess::Start(dig);
  ASSERT_TRUE(d.ok()) << d.status();
  absl::StatusOr<int> status = d->Wait(absl::Seconds(120));
  ASSERT_TRUE(status.ok());
  std::map<std::string, int> by_instance;
  int answered = 0;
  for (absl::string_view line : absl::StrSplit(d->ReadStdout(), '\n', absl::SkipEmpty())) {
    if (line.rfind("10.0.0.", 0) != 0) continue;
    ++by_instance[std::string(line)];
    ++answered;
  }
  EXPECT_EQ(answered, queries) << d->ReadStdout().substr(0, 2000);
  EXPECT_EQ(by_instance.size(), static_cast<size_t>(instances)) << DescribeShares(by_instance, answered);
  for (const auto& [who, n] : by_instance) EXPECT_GE(n, queries / instances / 3) << DescribeShares(by_instance, answered);
  RecordProperty("shares", DescribeShares(by_instance, answered));
}

}  // namespace
}  // namespace reuseport::testing
