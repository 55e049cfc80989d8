#include "fd_count.h"

#include <fcntl.h>
#include <unistd.h>

#include "gtest/gtest.h"
#include "status_macros.h"

namespace reuseport::testing {
namespace {

TEST(FdCountTest, CountsAndNamesOpenFds) {
  ASSERT_OK_AND_ASSIGN(int before, CountOpenFds(getpid()));
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(*CountOpenFds(getpid()), before + 1);
  ASSERT_OK_AND_ASSIGN(auto fds, ListOpenFds(getpid()));
  EXPECT_EQ(fds[fd], "/dev/null");
  close(fd);
  EXPECT_EQ(*CountOpenFds(getpid()), before);
}

TEST(FdCountTest, UnknownProcessIsNotFound) {
  EXPECT_EQ(CountOpenFds(999999999).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace reuseport::testing
