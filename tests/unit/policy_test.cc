// The policy file: what it grants, what it limits, and clear errors for bad lines.
#include "policy.h"

#include <linux/capability.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <vector>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "gtest/gtest.h"
#include "reuseport/protocol.h"

namespace reuseport::broker {
namespace {

PeerIdentity Peer(uid_t uid, gid_t gid = 65534, std::vector<gid_t> groups = {}) {
  PeerIdentity id;
  id.creds = PeerCredentials{getpid(), uid, gid};
  id.groups = std::move(groups);
  return id;
}

TEST(PolicyTest, EmptyPolicyGrantsNothingAndHasDefaults) {
  absl::StatusOr<Policy> p = Policy::Parse("# nothing\n\n");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_FALSE(p->AllowedByRule(Peer(1000), RP_PROTO_TCP, 80));
  EXPECT_TRUE(p->MayJoinPort(Peer(1000), RP_PROTO_TCP, 8080)) << "unprivileged ports need nothing";
  EXPECT_EQ(p->LimitsFor(1000).members, UidLimits{}.members);
}

TEST(PolicyTest, AllowRulesMatchUidPortRangeAndProtocol) {
  absl::StatusOr<Policy> p = Policy::Parse(
      "allow uid=1000 port=80,443 protocol=tcp   # web\n"
      "allow uid=1001 port=1-100\n"
      "allow gid=2000 port=53 protocol=udp\n");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->AllowedByRule(Peer(1000), RP_PROTO_TCP, 80));
  EXPECT_TRUE(p->AllowedByRule(Peer(1000), RP_PROTO_TCP, 443));
  EXPECT_FALSE(p->AllowedByRule(Peer(1000), RP_PROTO_UDP, 80)) << "tcp only";
  EXPECT_FALSE(p->AllowedByRule(Peer(1000), RP_PROTO_TCP, 81));
  EXPECT_TRUE(p->AllowedByRule(Peer(1001), RP_PROTO_UDP, 100)) << "both protocols by default";
  EXPECT_FALSE(p->AllowedByRule(Peer(1001), RP_PROTO_UDP, 101));
  EXPECT_TRUE(p->AllowedByRule(Peer(5, 2000), RP_PROTO_UDP, 53)) << "primary group";
  EXPECT_TRUE(p->AllowedByRule(Peer(5, 2001, {10, 2000}), RP_PROTO_UDP, 53)) << "supplementary group";
  EXPECT_FALSE(p->AllowedByRule(Peer(5, 2001, {10}), RP_PROTO_UDP, 53));
  EXPECT_EQ(p->rules().size(), 4u);
}

TEST(PolicyTest, NamesAreResolved) {
  absl::StatusOr<Policy> p = Policy::Parse("allow uid=root port=80\nallow gid=root port=81\n");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->AllowedByRule(Peer(0), RP_PROTO_TCP, 80));
  EXPECT_TRUE(p->AllowedByRule(Peer(7, 0), RP_PROTO_TCP, 81));
}

TEST(PolicyTest, LimitsHaveDefaultsAndPerUidOverrides) {
  absl::StatusOr<Policy> p = Policy::Parse("limit groups=10 members=20\nlimit uid=1000 members=3\n");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->LimitsFor(5).groups, 10);
  EXPECT_EQ(p->LimitsFor(5).members, 20);
  EXPECT_EQ(p->LimitsFor(1000).members, 3);
  EXPECT_EQ(p->LimitsFor(1000).groups, 10) << "a per-uid line starts from the defaults";
}

TEST(PolicyTest, BadLinesNameTheLineAndTheProblem) {
  struct Case {
    const char* text;
    const char* message;
  };
  for (const Case& c : std::vector<Case>{
           {"deny uid=1 port=80", "policy:1: unknown rule 'deny'"},
           {"\nallow port=80", "policy:2: allow needs exactly one of uid= or gid="},
           {"allow uid=1 gid=2 port=80", "exactly one of uid= or gid="},
           {"allow uid=1", "allow needs port="},
           {"allow uid=1 port=0", "port '0' is not"},
           {"allow uid=1 port=90-80", "port '90-80' is not"},
           {"allow uid=1 port=80 protocol=sctp", "protocol 'sctp'"},
           {"allow uid=no-such-user-here port=80", "no such user 'no-such-user-here'"},
           {"allow uid=1 port=80 color=red", "allow does not take 'color'"},
           {"allow uid=1 uid=2 port=80", "'uid' given twice"},
           {"allow uid", "'uid' is not key=value"},
           {"limit members=-1", "members='-1' is not a count"},
           {"limit", "limit needs"},
           {"limit bananas=3", "limit does not take 'bananas'"},
       }) {
    absl::StatusOr<Policy> p = Policy::Parse(c.text);
    ASSERT_FALSE(p.ok()) << c.text;
    EXPECT_NE(std::string(p.status().message()).find(c.message), std::string::npos)
        << c.text << " -> " << p.status().message();
  }
}

TEST(PolicyTest, PrivilegedPortsNeedTheCapabilityOrARule) {
  absl::StatusOr<Policy> p = Policy::Parse("allow gid=3000 port=80");
  ASSERT_TRUE(p.ok());
  PeerIdentity capable = Peer(4242, 4242);
  capable.may_bind_privileged = true;
  EXPECT_TRUE(p->MayJoinPort(capable, RP_PROTO_TCP, 80));
  EXPECT_FALSE(p->MayJoinPort(Peer(4242, 4242), RP_PROTO_TCP, 80));
  EXPECT_FALSE(p->MayJoinPort(Peer(4242, 4242), RP_PROTO_TCP, 81)) << "no rule, no capability";
  EXPECT_TRUE(p->MayJoinPort(Peer(4242, 4242, {3000}), RP_PROTO_TCP, 80)) << "a rule for a group it was in at connect";
}

// What the broker reads about a peer when it accepts its link: the groups and
// the capability of the process as it was then (here: this test process).
TEST(PolicyTest, PeerIdentityIsReadFromTheConnectingProcess) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  absl::StatusOr<PeerIdentity> id = ReadPeerIdentity(sv[0]);
  close(sv[0]);
  close(sv[1]);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->creds.pid, getpid());
  EXPECT_EQ(id->creds.uid, geteuid());
  std::vector<gid_t> mine(static_cast<size_t>(getgroups(0, nullptr)));
  ASSERT_EQ(getgroups(static_cast<int>(mine.size()), mine.data()), static_cast<int>(mine.size()));
  for (gid_t g : mine) EXPECT_TRUE(id->InGroup(g)) << "supplementary group " << g;
  struct __user_cap_header_struct header {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {};
  ASSERT_EQ(syscall(SYS_capget, &header, data), 0);
  bool capable = (data[CAP_NET_BIND_SERVICE / 32].effective >> (CAP_NET_BIND_SERVICE % 32)) & 1;
  EXPECT_EQ(id->may_bind_privileged, capable);
}

}  // namespace
}  // namespace reuseport::broker
