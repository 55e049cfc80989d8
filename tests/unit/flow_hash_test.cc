#include "flow_hash.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <set>

#include "gtest/gtest.h"

namespace reuseport::broker {
namespace {

rp_address V4(const char* text, uint16_t port) {
  rp_address a{};
  a.family = AF_INET;
  a.port = port;
  inet_pton(AF_INET, text, a.addr);
  return a;
}

TEST(FlowHashTest, SameFlowSameHashAcrossFamilies) {
  FlowKey key{7, 9};
  rp_address src = V4("10.0.0.1", 40000), dst = V4("10.0.0.2", 53);
  rp_address mapped_src{};
  mapped_src.family = AF_INET6;
  mapped_src.port = 40000;
  mapped_src.addr[10] = mapped_src.addr[11] = 0xff;
  inet_pton(AF_INET, "10.0.0.1", mapped_src.addr + 12);
  EXPECT_EQ(FlowHash(key, src, dst), FlowHash(key, src, dst));
  EXPECT_EQ(FlowHash(key, src, dst), FlowHash(key, mapped_src, dst));
}

TEST(FlowHashTest, DependsOnKeyPortAndAddress) {
  FlowKey key{7, 9}, other{7, 10};
  rp_address src = V4("10.0.0.1", 40000), dst = V4("10.0.0.2", 53);
  EXPECT_NE(FlowHash(key, src, dst), FlowHash(other, src, dst));
  EXPECT_NE(FlowHash(key, src, dst), FlowHash(key, V4("10.0.0.1", 40001), dst));
  EXPECT_NE(FlowHash(key, src, dst), FlowHash(key, V4("10.0.0.3", 40000), dst));
}

TEST(FlowHashTest, RandomKeysDiffer) {
  std::set<uint64_t> seen;
  for (int i = 0; i < 8; ++i) seen.insert(RandomFlowKey().k0);
  EXPECT_EQ(seen.size(), 8u);
}

TEST(FlowHashTest, SipHash24MatchesThePapersTestVector) {
  // Aumasson & Bernstein, "SipHash: a fast short-input PRF", appendix A:
  // key 00..0f, message 00..0e, SipHash-2-4 = a129ca6149be45e5. The same code
  // with 1 and 3 rounds is what the broker uses.
  FlowKey key{0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};
  uint8_t message[15];
  for (int i = 0; i < 15; ++i) message[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(SipHash(key, message, sizeof(message), 2, 4), 0xa129ca6149be45e5ULL);
  EXPECT_NE(SipHash13(key, message, sizeof(message)), SipHash(key, message, sizeof(message), 2, 4));
}

}  // namespace
}  // namespace reuseport::broker
