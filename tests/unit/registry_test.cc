// The kernel's sharing rules as the registry applies them.
#include "registry.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>

#include "gtest/gtest.h"

namespace reuseport::broker {
namespace {

rp_address Addr(const char* text, uint16_t port = 8080) {
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

TEST(AddressRulesTest, OverlapsAsTheKernelsBindConflict) {
  EXPECT_TRUE(Overlaps(Addr("0.0.0.0"), false, Addr("127.0.0.1"), false));
  EXPECT_TRUE(Overlaps(Addr("127.0.0.1"), false, Addr("127.0.0.1"), false));
  EXPECT_FALSE(Overlaps(Addr("127.0.0.1"), false, Addr("127.0.0.2"), false));
  EXPECT_TRUE(Overlaps(Addr("::"), false, Addr("127.0.0.1"), false)) << "dual-stack wildcard takes IPv4";
  EXPECT_FALSE(Overlaps(Addr("::"), true, Addr("127.0.0.1"), false)) << "V6ONLY leaves IPv4 alone";
  EXPECT_TRUE(Overlaps(Addr("::"), true, Addr("::1"), true));
  EXPECT_FALSE(Overlaps(Addr("::1"), false, Addr("0.0.0.0"), false));
  EXPECT_TRUE(Overlaps(Addr("::ffff:127.0.0.1"), false, Addr("127.0.0.1"), false));
}

TEST(AddressRulesTest, SpecificBeatsWildcardAndIpv4BeatsDualStack) {
  rp_address local = Addr("127.0.0.1");
  int specific = MatchScore(Addr("127.0.0.1"), false, local);
  int v4_wildcard = MatchScore(Addr("0.0.0.0"), false, local);
  int dual = MatchScore(Addr("::"), false, local);
  EXPECT_GT(specific, v4_wildcard);
  EXPECT_GT(v4_wildcard, dual);
  EXPECT_GT(dual, 0);
  EXPECT_EQ(MatchScore(Addr("::"), true, local), 0) << "a V6ONLY socket gets no IPv4";
  EXPECT_EQ(MatchScore(Addr("127.0.0.2"), false, local), 0);
  EXPECT_GT(MatchScore(Addr("::1"), false, Addr("::1")), MatchScore(Addr("::"), true, Addr("::1")));
}

TEST(AddressRulesTest, ServesOnlyWhenAllTrafficArrives) {
  EXPECT_TRUE(Serves(Addr("0.0.0.0"), false, Addr("127.0.0.1"), false));
  EXPECT_TRUE(Serves(Addr("::"), false, Addr("0.0.0.0"), false));
  EXPECT_FALSE(Serves(Addr("0.0.0.0"), false, Addr("::"), false)) << "IPv6 traffic does not reach an IPv4 socket";
  EXPECT_FALSE(Serves(Addr("::"), true, Addr("::"), false)) << "V6ONLY socket misses the IPv4 half";
  EXPECT_TRUE(Serves(Addr("::"), true, Addr("::1"), false));
  EXPECT_FALSE(Serves(Addr("127.0.0.1"), false, Addr("0.0.0.0"), false));
}

class RegistryTest : public ::testing::Test {
 protected:
  DomainKey key{NamespaceId{1, 2}, RP_PROTO_TCP, 8080};
  Registry registry;
};

TEST_F(RegistryTest, JoinsExactGroupOfSameUidOnly) {
  PortDomain& d = registry.DomainFor(key);
  RealSocket* real = registry.AddRealSocket(d, UniqueFd(), RP_PROTO_TCP, Addr("0.0.0.0"), false, 1, 1000);
  Group* g = registry.AddGroup(d, real, Addr("0.0.0.0"), false, 1000);
  JoinDecision same = registry.DecideJoin(d, Addr("0.0.0.0"), false, 1000);
  EXPECT_EQ(same.kind, JoinDecision::kJoinGroup);
  EXPECT_EQ(same.group, g);
  JoinDecision other = registry.DecideJoin(d, Addr("0.0.0.0"), false, 1001);
  EXPECT_EQ(other.kind, JoinDecision::kRefused);
  EXPECT_EQ(other.error, EADDRINUSE);
  EXPECT_EQ(registry.DecideJoin(d, Addr("127.0.0.1"), false, 1001).kind, JoinDecision::kRefused)
      << "an overlapping specific address of another uid is refused too";
}

TEST_F(RegistryTest, SpecificAddressUnderWildcardBecomesGroupOnTheWildcardSocket) {
  PortDomain& d = registry.DomainFor(key);
  RealSocket* real = registry.AddRealSocket(d, UniqueFd(), RP_PROTO_TCP, Addr("0.0.0.0"), false, 1, 0);
  registry.AddGroup(d, real, Addr("0.0.0.0"), false, 0);
  JoinDecision j = registry.DecideJoin(d, Addr("127.0.0.1"), false, 0);
  ASSERT_EQ(j.kind, JoinDecision::kNewGroupOnSocket);
  EXPECT_EQ(j.real, real);
  EXPECT_EQ(registry.DecideJoin(d, Addr("::1"), false, 0).kind, JoinDecision::kNoGroup)
      << "IPv6 cannot be served from an IPv4 socket";
}

TEST_F(RegistryTest, RoutesToTheMostSpecificGroupWithListeners) {
  PortDomain& d = registry.DomainFor(key);
  RealSocket* real = registry.AddRealSocket(d, UniqueFd(), RP_PROTO_TCP, Addr("0.0.0.0"), false, 1, 0);
  Group* wildcard = registry.AddGroup(d, real, Addr("0.0.0.0"), false, 0);
  Group* specific = registry.AddGroup(d, real, Addr("127.0.0.1"), false, 0);
  auto listener = [](Group* g) {
    auto m = std::make_unique<Member>();
    m->listening = true;
    m->key = g->id;
    g->members.push_back(std::move(m));
    g->RebuildTable();
  };
  listener(wildcard);
  rp_address lo = Addr("127.0.0.1");
  rp_address other = Addr("10.1.2.3");
  EXPECT_EQ(registry.Route(*real, &lo), wildcard) << "no listener in the specific group yet";
  listener(specific);
  EXPECT_EQ(registry.Route(*real, &lo), specific);
  EXPECT_EQ(registry.Route(*real, &other), wildcard);
  EXPECT_TRUE(registry.NeedsLocalAddress(*real));
}

TEST_F(RegistryTest, RemovingTheLastGroupReleasesTheSocketAndTheDomain) {
  PortDomain& d = registry.DomainFor(key);
  RealSocket* real = registry.AddRealSocket(d, UniqueFd(), RP_PROTO_TCP, Addr("0.0.0.0"), false, 1, 0);
  Group* a = registry.AddGroup(d, real, Addr("0.0.0.0"), false, 0);
  Group* b = registry.AddGroup(d, real, Addr("127.0.0.1"), false, 0);
  EXPECT_TRUE(registry.RemoveGroup(a).empty()) << "still serving group b";
  EXPECT_EQ(registry.RemoveGroup(b).size(), 1u);
  EXPECT_EQ(registry.FindDomain(key), nullptr);
}

// A dual-stack [::] group where an IPv4 wildcard socket exists gets a [::]
// V6ONLY socket of its own (an old kernel binds the two side by side, not a
// dual-stack one beside 0.0.0.0); beside a V6ONLY [::] it gets ::ffff:0.0.0.0.
TEST_F(RegistryTest, DualStackBesideOneHalfGetsTheOtherHalf) {
  PortDomain& d = registry.DomainFor(key);
  RealSocket* v4 = registry.AddRealSocket(d, UniqueFd(), RP_PROTO_TCP, Addr("0.0.0.0"), false, 1, 0);
  registry.AddGroup(d, v4, Addr("0.0.0.0"), false, 0);
  JoinDecision j = registry.DecideJoin(d, Addr("::"), false, 0);
  ASSERT_EQ(j.kind, JoinDecision::kNewGroupWithCompanion);
  EXPECT_EQ(j.real, v4);
  EXPECT_TRUE(SameAddress(j.companion, Addr("::")));
  EXPECT_TRUE(j.companion_v6only);
  EXPECT_EQ(registry.DecideJoin(d, Addr("::"), false, 1000).kind, JoinDecision::kRefused) << "another uid's half";

  Registry other;
  PortDomain& d6 = other.DomainFor(key);
  RealSocket* v6 = other.AddRealSocket(d6, UniqueFd(), RP_PROTO_TCP, Addr("::"), true, 1, 0);
  other.AddGroup(d6, v6, Addr("::"), true, 0);
  JoinDecision k = other.DecideJoin(d6, Addr("::"), false, 0);
  ASSERT_EQ(k.kind, JoinDecision::kNewGroupWithCompanion);
  EXPECT_TRUE(SameAddress(k.companion, Addr("::ffff:0.0.0.0")));
  EXPECT_FALSE(k.companion_v6only);
}

// A wildcard after a specific address takes over from the narrower socket.
TEST_F(RegistryTest, WiderAddressTakesOverFromNarrowerSockets) {
  PortDomain& d = registry.DomainFor(key);
  RealSocket* lo = registry.AddRealSocket(d, UniqueFd(), RP_PROTO_TCP, Addr("127.0.0.1"), false, 1, 0);
  Group* narrow = registry.AddGroup(d, lo, Addr("127.0.0.1"), false, 0);
  JoinDecision j = registry.DecideJoin(d, Addr("0.0.0.0"), false, 0);
  ASSERT_EQ(j.kind, JoinDecision::kWiden);
  ASSERT_EQ(j.retire.size(), 1u);
  EXPECT_EQ(j.retire[0], lo);
  // The groups move to the wider socket; the narrower one is released.
  RealSocket* wide = registry.AddRealSocket(d, UniqueFd(), RP_PROTO_TCP, Addr("0.0.0.0"), false, 2, 0);
  registry.AddGroup(d, wide, Addr("0.0.0.0"), false, 0);
  EXPECT_NE(registry.Rehome(lo, wide), nullptr);
  EXPECT_EQ(narrow->real, wide);
  EXPECT_EQ(wide->groups, 2);
}

// A specific IPv6 address is IPv6-only whatever the socket said before its
// bind: a joiner's unbound socket and the group's bound one must meet.
TEST_F(RegistryTest, SpecificIpv6GroupsIgnoreV6onlyOfTheJoiner) {
  PortDomain& d = registry.DomainFor(key);
  RealSocket* lo = registry.AddRealSocket(d, UniqueFd(), RP_PROTO_TCP, Addr("::1"), true, 1, 0);
  Group* g = registry.AddGroup(d, lo, Addr("::1"), true, 0);
  EXPECT_EQ(registry.FindExactGroup(d, Addr("::1"), false), g);
  EXPECT_FALSE(EffectiveV6only(Addr("::ffff:127.0.0.1"), true));
  EXPECT_TRUE(EffectiveV6only(Addr("::"), true));
  EXPECT_FALSE(EffectiveV6only(Addr("::"), false));
}

}  // namespace
}  // namespace reuseport::broker
