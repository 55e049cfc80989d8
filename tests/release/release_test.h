// The fixture of tests that read the release scripts/package.sh made: finds
// it (release_files.h) or skips saying where it looked.
#ifndef REUSEPORT_TESTS_RELEASE_RELEASE_TEST_H_
#define REUSEPORT_TESTS_RELEASE_RELEASE_TEST_H_

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "release_files.h"
#include "status_macros.h"

namespace reuseport::testing {

class ReleaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<ReleasePaths> release = FindRelease();
    if (absl::IsNotFound(release.status())) GTEST_SKIP() << release.status().message();
    ASSERT_OK(release);
    release_ = *release;
  }
  ReleasePaths release_;
};

}  // namespace reuseport::testing

#endif  // REUSEPORT_TESTS_RELEASE_RELEASE_TEST_H_
