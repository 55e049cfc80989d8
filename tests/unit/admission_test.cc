// The admission decision as a table: each request type against each rule,
// with no sockets and no broker, only a registry and a policy in memory.
#include "admission.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace reuseport::broker {
namespace {

constexpr uint16_t kPort = 8080;
constexpr uid_t kAlice = 1000;
constexpr uid_t kBob = 1001;
const NamespaceId kNetns{7, 9};

rp_address Addr(const char* text, uint16_t port = kPort) {
  rp_address a{};
  a.port = port;
  if (inet_pton(AF_INET, text, a.addr) == 1) {
    a.family = AF_INET;
  } else {
    EXPECT_EQ(inet_pton(AF_INET6, text, a.addr), 1) << text;
    a.family = AF_INET6;
  }
  return a;
}

SocketFacts Socket(const char* address, uid_t owner, bool bound, int protocol = RP_PROTO_TCP, uint64_t inode = 500) {
  SocketFacts s;
  s.address = Addr(address, bound ? kPort : 0);
  s.family = s.address.family;
  s.protocol = protocol;
  s.bound = bound;
  s.owner_uid = owner;
  s.inode = inode;
  return s;
}

// What the control server would have found for a well-behaved peer.
JoinFacts Facts(const SocketFacts& socket, uid_t peer) {
  JoinFacts f;
  f.peer.creds = PeerCredentials{4321, peer, peer};
  f.socket = socket;
  f.netns = kNetns;
  return f;
}

JoinRequest Bind(const char* address, uint16_t port = kPort, int protocol = RP_PROTO_TCP) {
  JoinRequest r;
  r.kind = JoinRequest::Kind::kBind;
  r.protocol = protocol;
  r.address = Addr(address, port);
  return r;
}

JoinRequest Rejoin(const char* address, bool v6only = false, int protocol = RP_PROTO_TCP) {
  JoinRequest r;
  r.kind = JoinRequest::Kind::kRejoin;
  r.protocol = protocol;
  r.address = Addr(address);
  r.v6only = v6only;
  return r;
}

class AdmissionTest : public ::testing::Test {
 protected:
  // A group of `owner` at `address`, served by a real socket of its own.
  Group* AddGroup(const char* address, uid_t owner, int protocol = RP_PROTO_TCP, uint64_t inode = 100) {
    PortDomain& d = registry_.DomainFor(DomainKey{kNetns, protocol, kPort});
    RealSocket* real = registry_.AddRealSocket(d, UniqueFd(), protocol, Addr(address), false, inode, owner);
    return registry_.AddGroup(d, real, Addr(address), false, owner);
  }

  JoinPlan Decide(const JoinRequest& r, const JoinFacts& f) { return DecideJoin(r, f, registry_, policy_, settings_); }

  Registry registry_;
  Policy policy_;
  AdmissionSettings settings_;
};

struct RefusalCase {
  std::string name;
  JoinRequest request;
  JoinFacts facts;
  int error;
  std::string reason;
};

void ExpectRefused(const JoinPlan& plan, const RefusalCase& c) {
  EXPECT_EQ(plan.action, JoinPlan::Action::kRefuse) << c.name;
  EXPECT_EQ(plan.refusal.error, c.error) << c.name << ": " << plan.refusal.detail;
  EXPECT_EQ(plan.refusal.reason, c.reason) << c.name;
  EXPECT_FALSE(plan.refusal.detail.empty()) << c.name;
}

// Rules 1-3 and 6, for BIND, with no group anywhere.
TEST_F(AdmissionTest, BindIsRefusedForEachBrokenRule) {
  std::vector<RefusalCase> cases;
  {
    JoinFacts f = Facts(Socket("127.0.0.1", kAlice, false), kAlice);
    f.link_is_member = true;
    cases.push_back({"link already a member", Bind("127.0.0.1"), f, EISCONN, "bad-request"});
  }
  {
    JoinFacts f = Facts(Socket("127.0.0.1", kAlice, false), kAlice);
    f.socket.reset();
    f.socket_problem = "not a TCP or UDP socket";
    cases.push_back({"not an inet socket", Bind("127.0.0.1"), f, ENOTSOCK, "bad-socket"});
  }
  cases.push_back({"protocol differs", Bind("127.0.0.1", kPort, RP_PROTO_UDP),
                   Facts(Socket("127.0.0.1", kAlice, false), kAlice), EPROTOTYPE, "bad-socket"});
  cases.push_back({"family differs", Bind("::1"), Facts(Socket("127.0.0.1", kAlice, false), kAlice), EPROTOTYPE,
                   "bad-socket"});
  {
    JoinFacts f = Facts(Socket("127.0.0.1", kAlice, false), kAlice);
    f.uid_may_be_unmapped = true;
    cases.push_back({"unmapped uid", Bind("127.0.0.1"), f, EACCES, "unmapped-uid"});
  }
  {
    JoinFacts f = Facts(Socket("127.0.0.1", kAlice, true), kAlice);
    f.socket->connected = true;
    cases.push_back({"connected", Bind("127.0.0.1"), f, EISCONN, "bad-socket"});
  }
  {
    JoinFacts f = Facts(Socket("127.0.0.1", kAlice, false), kAlice);
    f.netns.reset();
    cases.push_back({"unknown network namespace", Bind("127.0.0.1"), f, EACCES, "unknown-netns"});
  }
  cases.push_back({"bound elsewhere", Bind("127.0.0.2"), Facts(Socket("127.0.0.1", kAlice, true), kAlice), EINVAL,
                   "bad-request"});
  cases.push_back({"unbound to port 0", Bind("127.0.0.1", 0), Facts(Socket("127.0.0.1", kAlice, false), kAlice), EINVAL,
                   "bad-request"});
  cases.push_back({"privileged port, no capability", Bind("127.0.0.1", 80),
                   Facts(Socket("127.0.0.1", kAlice, false), kAlice), EACCES, "privileged-port"});
  cases.push_back({"no group and nobody making one", Bind("127.0.0.1"), Facts(Socket("127.0.0.1", kAlice, false), kAlice),
                   ENOENT, "no-group"});
  for (const RefusalCase& c : cases) ExpectRefused(Decide(c.request, c.facts), c);
}

// Rule 5: whatever overlaps another uid's group is refused, by any route.
TEST_F(AdmissionTest, AnotherUidsOverlappingGroupRefusesEveryKindOfJoin) {
  AddGroup("0.0.0.0", kAlice);
  std::vector<RefusalCase> cases = {
      {"join the same address", Bind("0.0.0.0"), Facts(Socket("0.0.0.0", kBob, false), kBob), EADDRINUSE, "other-uid"},
      {"join a specific address under it", Bind("127.0.0.1"), Facts(Socket("127.0.0.1", kBob, false), kBob), EADDRINUSE,
       "other-uid"},
      {"a socket the kernel bound beside it", Bind("127.0.0.1"), Facts(Socket("127.0.0.1", kBob, true), kBob),
       EADDRINUSE, "other-uid"},
      {"a dual-stack socket beside it", Bind("::"), Facts(Socket("::", kBob, true), kBob), EADDRINUSE, "other-uid"},
  };
  for (const RefusalCase& c : cases) ExpectRefused(Decide(c.request, c.facts), c);
  // Alice's own uid passes, whoever the peer process runs as.
  JoinPlan own = Decide(Bind("0.0.0.0"), Facts(Socket("0.0.0.0", kAlice, false), kBob));
  EXPECT_EQ(own.action, JoinPlan::Action::kAdmit);
}

TEST_F(AdmissionTest, BindJoinsCreatesOrWaits) {
  Group* wildcard = AddGroup("0.0.0.0", kAlice);
  JoinPlan join = Decide(Bind("0.0.0.0"), Facts(Socket("0.0.0.0", kAlice, false), kAlice));
  ASSERT_EQ(join.action, JoinPlan::Action::kAdmit);
  EXPECT_EQ(join.group, wildcard);

  JoinPlan bound_join = Decide(Bind("0.0.0.0"), Facts(Socket("0.0.0.0", kAlice, true), kAlice));
  ASSERT_EQ(bound_join.action, JoinPlan::Action::kAdmit);
  EXPECT_EQ(bound_join.group, wildcard) << "a bound socket of an existing group joins it";

  JoinPlan virtual_group = Decide(Bind("127.0.0.1"), Facts(Socket("127.0.0.1", kAlice, false), kAlice));
  ASSERT_EQ(virtual_group.action, JoinPlan::Action::kAdmit);
  EXPECT_EQ(virtual_group.group, nullptr);
  EXPECT_EQ(virtual_group.real, wildcard->real) << "a specific group is served from its uid's wildcard socket";
  EXPECT_EQ(virtual_group.owner_uid, kAlice);

  Registry empty;
  JoinFacts bound = Facts(Socket("127.0.0.1", kBob, true), kBob);
  JoinPlan create = DecideJoin(Bind("127.0.0.1"), bound, empty, policy_, settings_);
  ASSERT_EQ(create.action, JoinPlan::Action::kAdmit);
  EXPECT_EQ(create.group, nullptr);
  EXPECT_EQ(create.real, nullptr) << "a new group on the member's own socket";
  EXPECT_EQ(create.owner_uid, kBob);

  JoinFacts coming = Facts(Socket("127.0.0.1", kBob, false), kBob);
  coming.creator_may_be_coming = true;
  EXPECT_EQ(DecideJoin(Bind("127.0.0.1"), coming, empty, policy_, settings_).action, JoinPlan::Action::kWait);
  coming.wait_over = true;
  EXPECT_EQ(DecideJoin(Bind("127.0.0.1"), coming, empty, policy_, settings_).refusal.error, ENOENT);
}

TEST_F(AdmissionTest, PrivilegedPortsByCapabilityOrRule) {
  absl::StatusOr<Policy> policy = Policy::Parse("allow uid=1001 port=80");
  ASSERT_TRUE(policy.ok());
  policy_ = *policy;
  JoinPlan by_rule = Decide(Bind("127.0.0.1", 80), Facts(Socket("127.0.0.1", kBob, false), kBob));
  EXPECT_EQ(by_rule.action, JoinPlan::Action::kBindAndCreate) << "the broker binds it for the member";

  JoinFacts capable = Facts(Socket("127.0.0.1", kAlice, false), kAlice);
  capable.peer.may_bind_privileged = true;
  EXPECT_EQ(Decide(Bind("127.0.0.1", 80), capable).refusal.reason, "no-group")
      << "a capability lets it join a group, not have one bound for it";
}

TEST_F(AdmissionTest, LimitsOfThePeerAndTheOwner) {
  absl::StatusOr<Policy> policy = Policy::Parse("limit uid=1001 members=2 groups=1 udp_bytes=1048576");
  ASSERT_TRUE(policy.ok());
  policy_ = *policy;
  settings_.udp_channel_bytes = 4 << 20;
  registry_.MutableUsage(kBob).members = 2;
  ExpectRefused(Decide(Bind("127.0.0.1"), Facts(Socket("127.0.0.1", kBob, true), kBob)),
                {"members", {}, {}, EDQUOT, "limit-members"});
  registry_.MutableUsage(kBob).members = 0;
  AddGroup("127.0.0.2", kBob);
  ExpectRefused(Decide(Bind("127.0.0.1"), Facts(Socket("127.0.0.1", kBob, true), kBob)),
                {"groups", {}, {}, EDQUOT, "limit-groups"});
  EXPECT_EQ(Decide(Bind("127.0.0.2"), Facts(Socket("127.0.0.2", kBob, true), kBob)).action, JoinPlan::Action::kAdmit)
      << "joining its existing group makes no new one";

  // UDP channel bytes: what is left of the budget, down to a floor.
  Registry udp;
  JoinPlan first = DecideJoin(Bind("127.0.0.1", kPort, RP_PROTO_UDP),
                              Facts(Socket("127.0.0.1", kBob, true, RP_PROTO_UDP), kBob), udp, policy_, settings_);
  ASSERT_EQ(first.action, JoinPlan::Action::kAdmit);
  EXPECT_EQ(first.udp_channel_bytes, 1 << 20) << "capped by the uid's budget, not the 4 MiB default";
  udp.MutableUsage(kBob).udp_channel_bytes = (1 << 20) - 4096;
  ExpectRefused(DecideJoin(Bind("127.0.0.1", kPort, RP_PROTO_UDP),
                           Facts(Socket("127.0.0.1", kBob, true, RP_PROTO_UDP), kBob), udp, policy_, settings_),
                {"udp bytes", {}, {}, EDQUOT, "limit-udp_bytes"});
  JoinPlan alice = DecideJoin(Bind("127.0.0.1", kPort, RP_PROTO_UDP),
                              Facts(Socket("127.0.0.1", kAlice, true, RP_PROTO_UDP), kAlice), udp, policy_, settings_);
  EXPECT_EQ(alice.udp_channel_bytes, 4 << 20) << "another uid has its own budget";
}

// REJOIN gets every check BIND gets, plus the channel proof; nothing about
// the group it names is taken on trust.
TEST_F(AdmissionTest, RejoinIsRefusedForEachBrokenRule) {
  AddGroup("0.0.0.0", kAlice, RP_PROTO_UDP, 100);
  auto proven = [](JoinFacts f) {
    f.channel_proven = true;
    return f;
  };
  std::vector<RefusalCase> cases;
  cases.push_back({"channel not proven", Rejoin("0.0.0.0", false, RP_PROTO_UDP),
                   Facts(Socket("0.0.0.0", kAlice, true, RP_PROTO_UDP, 100), kAlice), EPERM, "bad-proof"});
  cases.push_back({"group socket unbound", Rejoin("0.0.0.0", false, RP_PROTO_UDP),
                   proven(Facts(Socket("0.0.0.0", kAlice, false, RP_PROTO_UDP), kAlice)), EINVAL, "bad-socket"});
  cases.push_back({"socket does not serve the address", Rejoin("::1", false, RP_PROTO_UDP),
                   proven(Facts(Socket("0.0.0.0", kAlice, true, RP_PROTO_UDP, 100), kAlice)), EINVAL, "bad-request"});
  // The hijack of issue 10: Bob's own dual-stack socket presented as the
  // socket of Alice's group, or of a group beside it.
  cases.push_back({"another uid's socket for the group", Rejoin("0.0.0.0", false, RP_PROTO_UDP),
                   proven(Facts(Socket("::", kBob, true, RP_PROTO_UDP, 777), kBob)), EADDRINUSE, "other-uid"});
  cases.push_back({"another uid's wildcard beside the group", Rejoin("::", false, RP_PROTO_UDP),
                   proven(Facts(Socket("::", kBob, true, RP_PROTO_UDP, 777), kBob)), EADDRINUSE, "other-uid"});
  cases.push_back({"a second socket at the group's address", Rejoin("0.0.0.0", false, RP_PROTO_UDP),
                   proven(Facts(Socket("0.0.0.0", kAlice, true, RP_PROTO_UDP, 101), kAlice)), EADDRINUSE,
                   "other-socket"});
  {
    JoinFacts f = proven(Facts(Socket("0.0.0.0", kAlice, true, RP_PROTO_UDP, 100), kAlice));
    f.uid_may_be_unmapped = true;
    cases.push_back({"unmapped uid", Rejoin("0.0.0.0", false, RP_PROTO_UDP), f, EACCES, "unmapped-uid"});
  }
  {
    JoinFacts f = proven(Facts(Socket("0.0.0.0", kAlice, true, RP_PROTO_UDP, 100), kAlice));
    f.netns.reset();
    cases.push_back({"unknown network namespace", Rejoin("0.0.0.0", false, RP_PROTO_UDP), f, EACCES, "unknown-netns"});
  }
  for (const RefusalCase& c : cases) ExpectRefused(Decide(c.request, c.facts), c);
}

TEST_F(AdmissionTest, RejoinFindsOrRemakesItsGroup) {
  Group* group = AddGroup("0.0.0.0", kAlice, RP_PROTO_TCP, 100);
  JoinFacts f = Facts(Socket("0.0.0.0", kAlice, true, RP_PROTO_TCP, 100), kAlice);
  f.channel_proven = true;
  JoinPlan again = Decide(Rejoin("0.0.0.0"), f);
  ASSERT_EQ(again.action, JoinPlan::Action::kAdmit);
  EXPECT_EQ(again.group, group);

  JoinPlan specific = Decide(Rejoin("127.0.0.1"), f);
  ASSERT_EQ(specific.action, JoinPlan::Action::kAdmit);
  EXPECT_EQ(specific.group, nullptr);
  EXPECT_EQ(specific.real, group->real) << "a specific group served by the wildcard socket it holds";

  Member other_process;
  f.rejoined_member = &other_process;
  JoinPlan link = Decide(Rejoin("0.0.0.0"), f);
  EXPECT_EQ(link.action, JoinPlan::Action::kAddLink);
  EXPECT_EQ(link.member, &other_process);

  Registry fresh;  // a restarted broker
  JoinFacts first = Facts(Socket("0.0.0.0", kAlice, true, RP_PROTO_TCP, 100), kAlice);
  first.channel_proven = true;
  JoinPlan remade = DecideJoin(Rejoin("0.0.0.0"), first, fresh, policy_, settings_);
  ASSERT_EQ(remade.action, JoinPlan::Action::kAdmit);
  EXPECT_EQ(remade.group, nullptr);
  EXPECT_EQ(remade.real, nullptr) << "the group is made again on the socket the member holds";
  EXPECT_EQ(remade.owner_uid, kAlice);
}

TEST_F(AdmissionTest, AttachNeedsAProvenChannel) {
  Member m;
  AttachFacts ok{false, true, true, &m};
  EXPECT_EQ(DecideAttach(ok).member, &m);
  struct Case {
    AttachFacts facts;
    int error;
  };
  for (const Case& c : std::vector<Case>{{{true, true, true, &m}, EISCONN},
                                         {{false, false, true, &m}, EBADMSG},
                                         {{false, true, false, nullptr}, ENOTSOCK},
                                         {{false, true, true, nullptr}, ENOENT}}) {
    AttachPlan plan = DecideAttach(c.facts);
    ASSERT_TRUE(plan.refusal.has_value());
    EXPECT_EQ(plan.refusal->error, c.error);
    EXPECT_EQ(plan.member, nullptr);
  }
}

TEST_F(AdmissionTest, ListenNeedsATcpMemberAndAWellFormedRequest) {
  Group* tcp = AddGroup("0.0.0.0", kAlice, RP_PROTO_TCP);
  Group* udp = AddGroup("0.0.0.0", kAlice, RP_PROTO_UDP);
  Member on_tcp, on_udp;
  on_tcp.group = tcp;
  on_udp.group = udp;
  Record good;
  rp_listen_request req{0, 0};
  good.payload.assign(reinterpret_cast<const char*>(&req), sizeof(req));
  EXPECT_EQ(DecideListen(good, &on_tcp).backlog, 128) << "0 means the default";
  req.backlog = 1 << 20;
  good.payload.assign(reinterpret_cast<const char*>(&req), sizeof(req));
  EXPECT_EQ(DecideListen(good, &on_tcp).backlog, 65535);
  EXPECT_EQ(DecideListen(good, nullptr).refusal->error, ENOTCONN);
  EXPECT_EQ(DecideListen(good, &on_udp).refusal->error, EOPNOTSUPP);
  Record short_payload;
  short_payload.payload = "xx";
  EXPECT_EQ(DecideListen(short_payload, &on_tcp).refusal->error, EBADMSG);
}

TEST(ParseJoinRequestTest, ShapesAreChecked) {
  Record bind;
  bind.header.opcode = RP_OP_BIND;
  JoinRequest out;
  EXPECT_EQ(ParseJoinRequest(bind, &out)->error, EBADMSG) << "no payload, no fd";
  rp_bind_request req{};
  req.address = Addr("127.0.0.1");
  req.protocol = 99;
  bind.payload.assign(reinterpret_cast<const char*>(&req), sizeof(req));
  bind.fds.emplace_back(UniqueFd());
  EXPECT_EQ(ParseJoinRequest(bind, &out)->error, EPROTONOSUPPORT);
  req.protocol = RP_PROTO_TCP;
  req.address.family = 1;
  bind.payload.assign(reinterpret_cast<const char*>(&req), sizeof(req));
  EXPECT_EQ(ParseJoinRequest(bind, &out)->error, EAFNOSUPPORT);
  req.address.family = AF_INET;
  bind.payload.assign(reinterpret_cast<const char*>(&req), sizeof(req));
  EXPECT_FALSE(ParseJoinRequest(bind, &out).has_value());
  EXPECT_EQ(out.kind, JoinRequest::Kind::kBind);

  Record rejoin;
  rejoin.header.opcode = RP_OP_REJOIN;
  rejoin.payload.assign(sizeof(rp_rejoin_request), '\0');
  rejoin.fds.emplace_back(UniqueFd());
  EXPECT_EQ(ParseJoinRequest(rejoin, &out)->error, EBADMSG) << "REJOIN carries three fds";
}

}  // namespace
}  // namespace reuseport::broker
