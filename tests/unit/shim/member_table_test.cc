// The fd slot table (member_table.cc): a program fd maps to its member, a
// private fd is marked so hooks leave it alone, and fds beyond the table are
// refused rather than mistracked.
#include "member_table.h"

#include <fcntl.h>
#include <unistd.h>

#include "gtest/gtest.h"

namespace reuseport::shim {
namespace {

TEST(MemberTableTest, ProgramFdMapsToItsMember) {
  TableLock lock;
  Member* m = AllocateMember();
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->state, MemberState::kPending);
  EXPECT_EQ(m->link_fd, -1);
  ASSERT_TRUE(MapFd(40, m));
  EXPECT_EQ(LookupMember(40), m);
  EXPECT_EQ(MemberAt(MemberIndex(m)), m);
  EXPECT_EQ(FindProgramFd(m), 40);
  EXPECT_EQ(LookupMember(41), nullptr);
  UnmapFd(40);
  EXPECT_EQ(LookupMember(40), nullptr);
  ReleaseMember(m);
  EXPECT_EQ(m->state, MemberState::kFree);
}

TEST(MemberTableTest, PrivateFdsAreNotMembers) {
  TableLock lock;
  Member* m = AllocateMember();
  ASSERT_NE(m, nullptr);
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  m->holder_fd = AdoptPrivateFd(fd, m);
  ASSERT_GE(m->holder_fd, 0);
  EXPECT_TRUE(IsPrivateFd(m->holder_fd));
  EXPECT_EQ(LookupMember(m->holder_fd), nullptr) << "a hook treats the shim's own fd as the program's";
  UnmarkPrivateFd(m->holder_fd);
  EXPECT_FALSE(IsPrivateFd(m->holder_fd));
  ReleaseMember(m);  // closes holder_fd
  EXPECT_EQ(m->holder_fd, -1);
}

TEST(MemberTableTest, FdsBeyondTheTableAreRefused) {
  TableLock lock;
  Member* m = AllocateMember();
  ASSERT_NE(m, nullptr);
  EXPECT_FALSE(MapFd(kMaxTrackedFd, m));
  EXPECT_FALSE(MapFd(-1, m));
  EXPECT_EQ(LookupMember(kMaxTrackedFd), nullptr);
  EXPECT_EQ(LookupMember(-1), nullptr);
  ReleaseMember(m);
}

}  // namespace
}  // namespace reuseport::shim
