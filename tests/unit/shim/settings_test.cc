// REUSEPORT_PORTS and REUSEPORT_LOG as the shim reads them (settings.cc).
#include "settings.h"

#include <string.h>

#include "gtest/gtest.h"
#include "raw_log.h"
#include "reuseport/protocol.h"

namespace reuseport::shim {
namespace {

Settings Parse(const char* ports) {
  Settings s;
  memset(&s, 0, sizeof(s));
  ParsePorts(ports, &s);
  return s;
}

TEST(ParsePortsTest, BarePortMeansBothProtocols) {
  Settings s = Parse("8080");
  ASSERT_EQ(s.port_count, 1);
  EXPECT_EQ(s.ports[0].port, 8080);
  EXPECT_EQ(s.ports[0].protocols, kPortTcp | kPortUdp);
  EXPECT_TRUE(PortListed(s, 8080, RP_PROTO_TCP));
  EXPECT_TRUE(PortListed(s, 8080, RP_PROTO_UDP));
  EXPECT_FALSE(PortListed(s, 8081, RP_PROTO_TCP));
}

TEST(ParsePortsTest, ProtocolSuffixes) {
  Settings s = Parse("8443/tcp,53/udp");
  ASSERT_EQ(s.port_count, 2);
  EXPECT_TRUE(PortListed(s, 8443, RP_PROTO_TCP));
  EXPECT_FALSE(PortListed(s, 8443, RP_PROTO_UDP));
  EXPECT_TRUE(PortListed(s, 53, RP_PROTO_UDP));
  EXPECT_FALSE(PortListed(s, 53, RP_PROTO_TCP));
}

TEST(ParsePortsTest, BadEntriesAreSkippedAndTheRestKept) {
  int saved = g_log_level;
  g_log_level = kLogQuiet;  // the warnings are expected
  Settings s = Parse("0,65536,http,80/sctp,,1x,443,/tcp,22");
  g_log_level = saved;
  ASSERT_EQ(s.port_count, 2);
  EXPECT_EQ(s.ports[0].port, 443);
  EXPECT_EQ(s.ports[1].port, 22);
}

TEST(ParsePortsTest, NoMoreThanSixtyFourEntries) {
  std::string list;
  for (int port = 1000; port < 1100; ++port) list += std::to_string(port) + ",";
  int saved = g_log_level;
  g_log_level = kLogQuiet;
  Settings s = Parse(list.c_str());
  g_log_level = saved;
  EXPECT_EQ(s.port_count, 64);
  EXPECT_TRUE(PortListed(s, 1063, RP_PROTO_TCP));
  EXPECT_FALSE(PortListed(s, 1064, RP_PROTO_TCP));
}

TEST(ParsePortsTest, NothingListedForNoVariable) {
  EXPECT_EQ(Parse(nullptr).port_count, 0);
  EXPECT_EQ(Parse("").port_count, 0);
}

TEST(ParseLogLevelTest, WordsAndDigits) {
  EXPECT_EQ(ParseLogLevel("quiet"), kLogQuiet);
  EXPECT_EQ(ParseLogLevel("error"), kLogError);
  EXPECT_EQ(ParseLogLevel("warn"), kLogWarn);
  EXPECT_EQ(ParseLogLevel("info"), kLogInfo);
  EXPECT_EQ(ParseLogLevel("debug"), kLogDebug);
  EXPECT_EQ(ParseLogLevel("0"), kLogQuiet);
  EXPECT_EQ(ParseLogLevel("4"), kLogDebug);
}

TEST(ParseLogLevelTest, UnsetEmptyOrUnknownIsWarn) {
  EXPECT_EQ(ParseLogLevel(nullptr), kLogWarn);
  EXPECT_EQ(ParseLogLevel(""), kLogWarn);
  int saved = g_log_level;
  g_log_level = kLogQuiet;
  EXPECT_EQ(ParseLogLevel("loud"), kLogWarn);
  g_log_level = saved;
}

}  // namespace
}  // namespace reuseport::shim
