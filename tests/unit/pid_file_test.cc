// The broker's --pidfile: whole lines only, and left alone once it names
// another broker (a successor after SIGHUP).
#include "pid_file.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace reuseport::broker {
namespace {

class PidFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/reuseport-pidfile-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = dir_ + "/reuseportd.pid";
  }
  void TearDown() override {
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }
  std::string Content() {
    std::ifstream in(path_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  std::string dir_, path_;
};

TEST_F(PidFileTest, WritesThePidAsOneLineReadableByAll) {
  mode_t old = umask(077);
  PidFile file;
  absl::Status s = file.Write(path_, 4242);
  umask(old);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Content(), "4242\n");
  struct stat st {};
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  PidFile again;
  ASSERT_TRUE(again.Write(path_, 7).ok());
  EXPECT_EQ(Content(), "7\n") << "replaced whole";
  // Nothing but the file itself is left in the directory.
  EXPECT_EQ(rmdir(dir_.c_str()), -1);
  unlink(path_.c_str());
  EXPECT_EQ(rmdir(dir_.c_str()), 0) << "a temporary file was left behind";
  ASSERT_EQ(mkdir(dir_.c_str(), 0700), 0);
}

TEST_F(PidFileTest, RemovesOnlyItsOwn) {
  PidFile file;
  ASSERT_TRUE(file.Write(path_, 100).ok());
  file.RemoveIfOurs(99);
  EXPECT_EQ(Content(), "100\n") << "another broker's file stays";
  file.RemoveIfOurs(100);
  EXPECT_NE(access(path_.c_str(), F_OK), 0);
  file.RemoveIfOurs(100);  // absent: nothing to do
}

TEST_F(PidFileTest, AnUnwritableDirectoryIsAnErrorNamingThePath) {
  PidFile file;
  absl::Status s = file.Write(dir_ + "/absent/reuseportd.pid", 1);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find(dir_ + "/absent/"), std::string::npos) << s;
}

}  // namespace
}  // namespace reuseport::broker
