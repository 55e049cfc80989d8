// The /etc/passwd and /etc/group reader that stands in for getpwnam/getgrnam
// in the static broker (broker/user_database.h).
#include "user_database.h"

#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace reuseport::broker {
namespace {

class UserDatabaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/reuseport-userdb-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
  }
  void TearDown() override {
    for (const std::string& f : files_) unlink(f.c_str());
    rmdir(dir_.c_str());
  }
  std::string Write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    files_.push_back(path);
    return path;
  }
  std::string dir_;
  std::vector<std::string> files_;
};

TEST_F(UserDatabaseTest, FindsUsersAndGroupsByName) {
  std::string passwd = Write("passwd",
                             "root:x:0:0:root:/root:/bin/bash\n"
                             "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
                             "app:x:1000:1000::/home/app:/bin/sh");  // no newline at the end
  std::string group = Write("group", "root:x:0:\nwww-data:x:33:\ndns:x:1001:app,www-data\n");
  EXPECT_EQ(*FindUserId("root", passwd), 0u);
  EXPECT_EQ(*FindUserId("www-data", passwd), 33u);
  EXPECT_EQ(*FindUserId("app", passwd), 1000u);
  EXPECT_EQ(*FindGroupId("dns", group), 1001u);
  EXPECT_EQ(*FindGroupId("root", group), 0u);
}

TEST_F(UserDatabaseTest, UnknownNamesAreNotFound) {
  std::string passwd = Write("passwd", "root:x:0:0:root:/root:/bin/bash\n");
  absl::StatusOr<uint32_t> id = FindUserId("nobody-here", passwd);
  EXPECT_TRUE(absl::IsNotFound(id.status())) << id.status();
  EXPECT_TRUE(absl::IsNotFound(FindUserId("", passwd).status()));
  // A prefix is not a name, nor is another field.
  EXPECT_TRUE(absl::IsNotFound(FindUserId("roo", passwd).status()));
  EXPECT_TRUE(absl::IsNotFound(FindUserId("0", passwd).status()));
}

TEST_F(UserDatabaseTest, SkipsCommentsCompatEntriesAndMalformedLines) {
  std::string passwd = Write("passwd",
                             "# local users\n"
                             "\n"
                             "+nisuser::::::\n"
                             "-blocked:x:5:5::/:/bin/false\n"
                             "short:x\n"
                             "bad:x:notanumber:1::/:/bin/sh\n"
                             "bad:x:77:1::/:/bin/sh\n"
                             "first:x:10:10::/:/bin/sh\n"
                             "first:x:11:11::/:/bin/sh\n");
  EXPECT_TRUE(absl::IsNotFound(FindUserId("+nisuser", passwd).status()));
  EXPECT_TRUE(absl::IsNotFound(FindUserId("nisuser", passwd).status()));
  EXPECT_TRUE(absl::IsNotFound(FindUserId("blocked", passwd).status()));
  EXPECT_TRUE(absl::IsNotFound(FindUserId("short", passwd).status()));
  EXPECT_EQ(*FindUserId("bad", passwd), 77u) << "a malformed entry is skipped, a later good one found";
  EXPECT_EQ(*FindUserId("first", passwd), 10u) << "the first entry of a name wins";
}

TEST_F(UserDatabaseTest, AnUnreadableFileIsAnErrorThatNamesIt) {
  absl::StatusOr<uint32_t> id = FindGroupId("root", dir_ + "/absent");
  ASSERT_FALSE(id.ok());
  EXPECT_FALSE(absl::IsNotFound(id.status())) << "not the same as 'no such group'";
  EXPECT_NE(std::string(id.status().message()).find(dir_ + "/absent"), std::string::npos) << id.status();
}

TEST_F(UserDatabaseTest, SystemFilesAgreeWithTheCLibrary) {
  // The machine's own root entries, as getpwnam/getgrnam would give them.
  EXPECT_EQ(*FindUserId("root"), 0u);
  EXPECT_EQ(*FindGroupId("root"), 0u);
}

}  // namespace
}  // namespace reuseport::broker
