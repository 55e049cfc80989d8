// The broker's limited log: a few lines of a kind per window, then silence
// until the next window, which opens by itself.
#include "log.h"

#include "gtest/gtest.h"

namespace reuseport::broker {
namespace {

TEST(LogLimitedTest, AFewLinesPerWindowThenSilence) {
  const int64_t start = 1000;
  for (int i = 0; i < kLogLimit; ++i) EXPECT_TRUE(ShouldLogLimited("test-window", start + i)) << i;
  EXPECT_FALSE(ShouldLogLimited("test-window", start + 10));
  EXPECT_FALSE(ShouldLogLimited("test-window", start + kLogWindowMs - 1));
}

TEST(LogLimitedTest, TheNextWindowLogsAgain) {
  const int64_t start = 5000;
  for (int i = 0; i <= kLogLimit; ++i) ShouldLogLimited("test-reopen", start);
  EXPECT_FALSE(ShouldLogLimited("test-reopen", start + 1));
  EXPECT_TRUE(ShouldLogLimited("test-reopen", start + kLogWindowMs)) << "a lifetime cap, not a window";
}

TEST(LogLimitedTest, KindsAreCountedApart) {
  for (int i = 0; i <= kLogLimit; ++i) ShouldLogLimited("test-one", 0);
  EXPECT_FALSE(ShouldLogLimited("test-one", 1));
  EXPECT_TRUE(ShouldLogLimited("test-other", 1));
}

}  // namespace
}  // namespace reuseport::broker
