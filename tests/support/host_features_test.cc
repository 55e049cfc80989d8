#include "host_features.h"

#include <stdlib.h>
#include <sys/stat.h>

#include "gtest/gtest.h"
#include "temp_dir.h"

namespace reuseport::testing {
namespace {

TEST(HostFeaturesTest, FindsInstalledProgramsAndNamesMissingOnesWithTheirPackage) {
  EXPECT_NE(FindProgram("sh"), "");
  EXPECT_EQ(ProgramMissing("sh", "dash"), "");
  EXPECT_EQ(ProgramMissing("/bin/sh", "dash"), "");
  EXPECT_EQ(FindProgram("reuseport-no-such-program"), "");
  EXPECT_EQ(ProgramMissing("reuseport-no-such-program", "some-package"),
            "reuseport-no-such-program is not installed (Debian package some-package; scripts/setup.sh installs it)");
  EXPECT_NE(ProgramMissing("/nonexistent/python3", "python3"), "");
}

TEST(HostFeaturesTest, ProgramsAreRequiredOnlyWhenAskedFor) {
  const char* saved = getenv("REUSEPORT_REQUIRE_PROGRAMS");
  std::string old = saved != nullptr ? saved : "";
  setenv("REUSEPORT_REQUIRE_PROGRAMS", "1", 1);
  EXPECT_TRUE(ProgramsRequired());
  setenv("REUSEPORT_REQUIRE_PROGRAMS", "0", 1);
  EXPECT_FALSE(ProgramsRequired());
  unsetenv("REUSEPORT_REQUIRE_PROGRAMS");
  EXPECT_FALSE(ProgramsRequired());
  if (saved != nullptr) setenv("REUSEPORT_REQUIRE_PROGRAMS", old.c_str(), 1);
}

TEST(HostFeaturesTest, TempDirsHonourTmpdir) {
  absl::StatusOr<TempDir> base = TempDir::Create("reuseport-tmpdir-base");
  ASSERT_TRUE(base.ok()) << base.status();
  const char* saved = getenv("TMPDIR");
  std::string old = saved != nullptr ? saved : "";
  setenv("TMPDIR", (base->path() + "/").c_str(), 1);
  EXPECT_EQ(TempDir::Base(), base->path());
  absl::StatusOr<TempDir> inside = TempDir::Create("inside");
  setenv("TMPDIR", "relative/dir", 1);
  EXPECT_EQ(TempDir::Base(), "/tmp") << "only an absolute TMPDIR counts";
  if (saved != nullptr) {
    setenv("TMPDIR", old.c_str(), 1);
  } else {
    unsetenv("TMPDIR");
  }
  ASSERT_TRUE(inside.ok()) << inside.status();
  EXPECT_EQ(inside->path().rfind(base->path() + "/inside-", 0), 0u) << inside->path();
}

}  // namespace
}  // namespace reuseport::testing
