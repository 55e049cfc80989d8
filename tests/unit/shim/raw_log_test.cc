// RawLog: one line per Emit, built without allocation, written with one
// write(2) to stderr, errno kept.
#include "raw_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"

namespace reuseport::shim {
namespace {

// Runs `emit` with stderr on a pipe and returns what it wrote.
template <typename F>
std::string Captured(F emit) {
  int p[2];
  EXPECT_EQ(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
  int saved_stderr = dup(2);
  dup2(p[1], 2);
  emit();
  dup2(saved_stderr, 2);
  close(saved_stderr);
  close(p[1]);
  std::string out;
  char buf[1024];
  ssize_t n;
  while ((n = read(p[0], buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(p[0]);
  return out;
}

class RawLogTest : public ::testing::Test {
 protected:
  void SetUp() override { saved_ = g_log_level; }
  void TearDown() override { g_log_level = saved_; }
  int saved_ = 0;
};

TEST_F(RawLogTest, OneLineWithPidPrefixNumbersAndErrnoNames) {
  g_log_level = kLogWarn;
  std::string line = Captured([] {
    RawLog(kLogWarn).Str("fd ").Int(-7).Str(" member ").Uint(UINT64_MAX).Str(": ").Errno(EADDRINUSE).Emit();
  });
  std::string prefix = "reuseport[" + std::to_string(getpid()) + "]: ";
  EXPECT_EQ(line, prefix + "fd -7 member 18446744073709551615: EADDRINUSE\n");
}

TEST_F(RawLogTest, ExtremeIntegers) {
  g_log_level = kLogWarn;
  std::string line = Captured([] { RawLog(kLogWarn).Int(INT64_MIN).Str(" ").Int(0).Emit(); });
  EXPECT_NE(line.find("]: -9223372036854775808 0\n"), std::string::npos) << line;
}

TEST_F(RawLogTest, BelowTheLevelNothingIsWritten) {
  g_log_level = kLogWarn;
  EXPECT_EQ(Captured([] { RawLog(kLogDebug).Str("hidden").Emit(); }), "");
  g_log_level = kLogQuiet;
  EXPECT_EQ(Captured([] { RawLog(kLogError).Str("hidden").Emit(); }), "");
}

TEST_F(RawLogTest, KeepsErrno) {
  g_log_level = kLogWarn;
  Captured([] {
    errno = ECONNRESET;
    RawLog(kLogWarn).Str("x").Emit();
    EXPECT_EQ(errno, ECONNRESET);
  });
}

TEST_F(RawLogTest, ALongLineIsCutButEnds) {
  g_log_level = kLogWarn;
  std::string long_text(2000, 'a');
  std::string line = Captured([&] { RawLog(kLogWarn).Str(long_text.c_str()).Emit(); });
  EXPECT_LT(line.size(), 2000u);
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
}

TEST_F(RawLogTest, FirstTimeOnlyOnce) {
  int flag = 0;
  EXPECT_TRUE(FirstTime(&flag));
  EXPECT_FALSE(FirstTime(&flag));
}

}  // namespace
}  // namespace reuseport::shim
