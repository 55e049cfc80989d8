// The shim's option helpers (socket_options.cc): the differ mask that decides
// which options an accepted socket needs, and getsockopt/setsockopt's int
// argument conventions.
#include "socket_options.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gtest/gtest.h"

namespace reuseport::shim {
namespace {

TEST(DifferMaskTest, OnlyOptionsThatDifferAndWereReadCount) {
  InheritedOptions o{};
  int nodelay = InheritedOptionIndex(IPPROTO_TCP, TCP_NODELAY);
  int keepalive = InheritedOptionIndex(SOL_SOCKET, SO_KEEPALIVE);
  ASSERT_GE(nodelay, 0);
  ASSERT_GE(keepalive, 0);
  o.wanted[nodelay] = 1;
  o.listener[nodelay] = 0;
  o.wanted[keepalive] = 1;
  o.listener[keepalive] = INT64_MIN;  // could not be read: never applied
  UpdateDifferMask(&o);
  EXPECT_EQ(o.differ_mask, 1u << nodelay);
  o.listener[nodelay] = 1;
  UpdateDifferMask(&o);
  EXPECT_EQ(o.differ_mask, 0u);
}

TEST(DifferMaskTest, UnknownOptionHasNoIndex) { EXPECT_EQ(InheritedOptionIndex(SOL_SOCKET, SO_REUSEPORT), -1); }

TEST(DifferMaskTest, AppliedToAnAcceptedSocketOnlyWhereItDiffers) {
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int accepted = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  ASSERT_GE(accepted, 0);
  InheritedOptions o{};
  ReadInheritedOptions(listener, AF_INET, o.listener);
  ReadInheritedOptions(listener, AF_INET, o.wanted);
  o.wanted[InheritedOptionIndex(IPPROTO_TCP, TCP_NODELAY)] = 1;
  UpdateDifferMask(&o);
  ApplyInheritedOptions(accepted, AF_INET, o);
  EXPECT_EQ(IntOption(accepted, IPPROTO_TCP, TCP_NODELAY), 1);
  close(listener);
  close(accepted);
}

TEST(ReturnIntTest, WritesAtMostLen) {
  int v = -1;
  socklen_t len = sizeof(v);
  EXPECT_EQ(ReturnInt(1, &v, &len), 0);
  EXPECT_EQ(v, 1);
  EXPECT_EQ(len, sizeof(int));
  unsigned char small = 0xff;
  len = 1;
  EXPECT_EQ(ReturnInt(0, &small, &len), 0);
  EXPECT_EQ(small, 0);
  EXPECT_EQ(len, 1u);
}

TEST(ReturnIntTest, ErrorsAsTheKernelGivesThem) {
  socklen_t len = sizeof(int);
  EXPECT_EQ(ReturnInt(1, nullptr, &len), -1);
  EXPECT_EQ(errno, EFAULT);
  int v;
  EXPECT_EQ(ReturnInt(1, &v, nullptr), -1);
  EXPECT_EQ(errno, EFAULT);
  len = static_cast<socklen_t>(-1);
  EXPECT_EQ(ReturnInt(1, &v, &len), -1);
  EXPECT_EQ(errno, EINVAL);
}

TEST(CheckIntArgumentTest, AsSetsockoptChecksIt) {
  int on = 1;
  EXPECT_EQ(CheckIntArgument(&on, sizeof(on)), 0);
  EXPECT_EQ(CheckIntArgument(nullptr, sizeof(on)), -1);
  EXPECT_EQ(errno, EFAULT);
  EXPECT_EQ(CheckIntArgument(&on, 2), -1);
  EXPECT_EQ(errno, EINVAL);
}

}  // namespace
}  // namespace reuseport::shim
