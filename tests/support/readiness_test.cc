#include "readiness.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "status_macros.h"
#include "subprocess.h"
#include "temp_dir.h"

namespace reuseport::testing {
namespace {

TEST(ReadinessTest, ReturnsOnceAnotherProcessRenamesTheFileIntoPlace) {
  ASSERT_OK_AND_ASSIGN(TempDir dir, TempDir::Create());
  std::string ready = dir.File("ready");
  // The writer blocks reading a pipe until we let it go, so our wait has
  // really started before the file appears.
  int go[2];
  ASSERT_EQ(pipe2(go, O_CLOEXEC), 0);
  SubprocessOptions options;
  options.argv = {"/bin/sh", "-c", "read line <&3; echo 42 > ready.tmp; mv ready.tmp ready"};
  options.working_dir = dir.path();
  options.inherited_fds = {{go[0], 3}};
  ASSERT_OK_AND_ASSIGN(Subprocess writer, Subprocess::Start(options));
  close(go[0]);
  EXPECT_EQ(WaitForFile(ready, absl::Milliseconds(20)).code(), absl::StatusCode::kDeadlineExceeded);
  ASSERT_EQ(write(go[1], "go\n", 3), 3);
  close(go[1]);
  ASSERT_OK(WaitForFile(ready, absl::Seconds(10), &writer));
  EXPECT_EQ(*ReadFile(ready), "42\n");
  EXPECT_EQ(*ReadLines(ready), std::vector<std::string>{"42"});
}

TEST(ReadinessTest, ReturnsAtOnceForAnExistingFile) {
  ASSERT_OK_AND_ASSIGN(TempDir dir, TempDir::Create());
  std::ofstream(dir.File("f")) << "a\nb";
  ASSERT_OK(WaitForFile(dir.File("f"), absl::ZeroDuration()));
  EXPECT_EQ(*ReadLines(dir.File("f")), (std::vector<std::string>{"a", "b"}));
}

TEST(ReadinessTest, FailsEarlyWhenTheProcessExitsWithoutTheFile) {
  ASSERT_OK_AND_ASSIGN(TempDir dir, TempDir::Create());
  SubprocessOptions options;
  options.argv = {"/bin/sh", "-c", "echo cannot bind >&2; exit 2"};
  ASSERT_OK_AND_ASSIGN(Subprocess process, Subprocess::Start(options));
  absl::Time start = absl::Now();
  absl::Status status = WaitForFile(dir.File("never"), absl::Seconds(30), &process);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("exited with status 2"), std::string::npos) << status;
  EXPECT_NE(status.message().find("cannot bind"), std::string::npos) << status;
}

TEST(ReadinessTest, MissingDirectoryAndFile) {
  EXPECT_EQ(WaitForFile("/nonexistent-dir/x", absl::Seconds(1)).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ReadFile("/nonexistent-dir/x").status().code(), absl::StatusCode::kNotFound);
}

TEST(TempDirTest, RemovedWithContentsAndMovable) {
  std::string path;
  {
    ASSERT_OK_AND_ASSIGN(TempDir dir, TempDir::Create("reuseport-tempdir-test", 0777));
    path = dir.path();
    struct stat st {};
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0777u);
    std::filesystem::create_directories(dir.File("a/b"));
    std::ofstream(dir.File("a/b/c")) << "c";
    TempDir moved = std::move(dir);
    EXPECT_EQ(moved.path(), path);
    EXPECT_TRUE(std::filesystem::exists(path + "/a/b/c"));
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

}  // namespace
}  // namespace reuseport::testing
