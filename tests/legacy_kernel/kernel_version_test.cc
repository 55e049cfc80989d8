#include "kernel_version.h"

#include <gtest/gtest.h>

namespace reuseport::legacy_kernel {
namespace {

TEST(LegacyKernelVersion, ParsesTwoAndThreeParts) {
  EXPECT_EQ(ParseKernelVersion("3.2").value(), (KernelVersion{3, 2, 0, 0}));
  EXPECT_EQ(ParseKernelVersion("2.6.28").value(), (KernelVersion{2, 6, 28, 0}));
  EXPECT_EQ(ParseKernelVersion("10.0").value(), (KernelVersion{10, 0, 0, 0}));
}

TEST(LegacyKernelVersion, RejectsAnythingElse) {
  for (const char* text : {"", "3", "3.", ".2", "3..2", "3.2.1.4", "3.x", "+3.2", "3.2 ", " 3.2",
                           "-3.2", "3.2-rc1", "70000.1", "3.2.0x1"}) {
    EXPECT_FALSE(ParseKernelVersion(text).ok()) << "'" << text << "'";
  }
}

TEST(LegacyKernelVersion, OrdersByParts) {
  EXPECT_LT((KernelVersion{2, 6, 39}), (KernelVersion{3, 0}));
  EXPECT_LT((KernelVersion{3, 2}), (KernelVersion{3, 2, 1}));
  EXPECT_LT((KernelVersion{3, 9}), (KernelVersion{3, 10}));  // not string order
  EXPECT_EQ((KernelVersion{3, 2}), (KernelVersion{3, 2, 0, 0}));
}

TEST(LegacyKernelVersion, FormatsWithoutTrailingZeros) {
  EXPECT_EQ(FormatKernelVersion({3, 2}), "3.2");
  EXPECT_EQ(FormatKernelVersion({4, 0}), "4.0");
  EXPECT_EQ(FormatKernelVersion({2, 6, 28}), "2.6.28");
  EXPECT_EQ(FormatKernelVersion({2, 4, 8, 1}), "2.4.8.1");
}

TEST(LegacyKernelVersion, ReadsTheLeadingVersionOfAKernelRelease) {
  EXPECT_EQ(ParseKernelRelease("6.18.44-fc-v1252").value(), (KernelVersion{6, 18, 44, 0}));
  EXPECT_EQ(ParseKernelRelease("3.2.0-4-amd64").value(), (KernelVersion{3, 2, 0, 0}));
  EXPECT_EQ(ParseKernelRelease("3.2.71").value(), (KernelVersion{3, 2, 71, 0}));
  EXPECT_EQ(ParseKernelRelease("4.9.0.1").value(), (KernelVersion{4, 9, 0, 0}));
  EXPECT_EQ(ParseKernelRelease("5.4").value(), (KernelVersion{5, 4, 0, 0}));
  EXPECT_FALSE(ParseKernelRelease("").ok());
  EXPECT_FALSE(ParseKernelRelease("Linux").ok());
}

TEST(LegacyKernelVersion, RunningKernelIsReadable) { EXPECT_TRUE(RunningKernelVersion().ok()); }

}  // namespace
}  // namespace reuseport::legacy_kernel
