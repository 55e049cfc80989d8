// include/reuseport/fd_passing.h, the one SCM_RIGHTS codec of shim, broker and
// tests: packing, taking at most `max`, closing the rest, and the guard
// against a control header shorter than itself.
#include "reuseport/fd_passing.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vector>

#include "gtest/gtest.h"

namespace {

int g_closed = 0;
int CountingClose(int fd) {
  ++g_closed;
  return close(fd);
}

bool IsOpen(int fd) { return fcntl(fd, F_GETFD) >= 0; }

class FdPassingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv_), 0);
    g_closed = 0;
  }
  void TearDown() override {
    close(sv_[0]);
    close(sv_[1]);
  }
  void Send(const std::vector<int>& fds) {
    char byte = 'x';
    struct iovec iov = {&byte, 1};
    struct msghdr msg {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(struct cmsghdr) char control[RP_FDS_CONTROL_SPACE(8)];
    ASSERT_EQ(rp_fds_attach(&msg, control, sizeof(control), fds.data(), fds.size()), 0);
    ASSERT_EQ(sendmsg(sv_[0], &msg, 0), 1);
  }
  void Receive(struct msghdr* msg, char* control, size_t size) {
    iov_ = {&byte_, 1};
    *msg = {};
    msg->msg_iov = &iov_;
    msg->msg_iovlen = 1;
    msg->msg_control = control;
    msg->msg_controllen = size;
    ASSERT_EQ(recvmsg(sv_[1], msg, MSG_CMSG_CLOEXEC), 1);
  }
  int sv_[2];
  char byte_ = 0;
  struct iovec iov_ {};
};

TEST_F(FdPassingTest, AttachNothingLeavesNoControl) {
  struct msghdr msg {};
  alignas(struct cmsghdr) char control[RP_FDS_CONTROL_SPACE(1)];
  EXPECT_EQ(rp_fds_attach(&msg, control, sizeof(control), nullptr, 0), 0);
  EXPECT_EQ(msg.msg_control, nullptr);
  EXPECT_EQ(msg.msg_controllen, 0u);
}

TEST_F(FdPassingTest, AttachRefusesASmallBuffer) {
  int fds[3] = {0, 1, 2};
  struct msghdr msg {};
  alignas(struct cmsghdr) char control[RP_FDS_CONTROL_SPACE(1)];
  EXPECT_EQ(rp_fds_attach(&msg, control, sizeof(control), fds, 3), -1);
  EXPECT_EQ(msg.msg_control, nullptr);
}

TEST_F(FdPassingTest, TakesWhatWasSentInOrder) {
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  Send({p[0], p[1]});
  struct msghdr msg;
  alignas(struct cmsghdr) char control[RP_FDS_CONTROL_SPACE(3)];
  Receive(&msg, control, sizeof(control));
  int out[3];
  rp_fds_taken taken;
  rp_fds_take(&msg, out, 3, CountingClose, &taken);
  ASSERT_EQ(taken.count, 2u);
  EXPECT_EQ(taken.dropped, 0u);
  EXPECT_FALSE(taken.truncated);
  EXPECT_FALSE(taken.other_control);
  EXPECT_EQ(g_closed, 0);
  // The received read end reads what the original write end writes.
  ASSERT_EQ(write(p[1], "y", 1), 1);
  char c = 0;
  EXPECT_EQ(read(out[0], &c, 1), 1);
  EXPECT_EQ(c, 'y');
  for (int fd : {p[0], p[1], out[0], out[1]}) close(fd);
}

TEST_F(FdPassingTest, ClosesEveryFdBeyondMax) {
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(null_fd, 0);
  Send({null_fd, null_fd, null_fd, null_fd});
  struct msghdr msg;
  alignas(struct cmsghdr) char control[RP_FDS_CONTROL_SPACE(8)];
  Receive(&msg, control, sizeof(control));
  int out[1];
  rp_fds_taken taken;
  rp_fds_take(&msg, out, 1, CountingClose, &taken);
  EXPECT_EQ(taken.count, 1u);
  EXPECT_EQ(taken.dropped, 3u);
  EXPECT_EQ(g_closed, 3);
  EXPECT_TRUE(IsOpen(out[0]));
  close(out[0]);
  close(null_fd);
}

TEST_F(FdPassingTest, ReportsTruncationByTheKernel) {
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  Send({null_fd, null_fd, null_fd});
  struct msghdr msg;
  alignas(struct cmsghdr) char control[RP_FDS_CONTROL_SPACE(1)];
  Receive(&msg, control, sizeof(control));
  int out[3];
  rp_fds_taken taken;
  rp_fds_take(&msg, out, 3, CountingClose, &taken);
  EXPECT_TRUE(taken.truncated);
  for (size_t i = 0; i < taken.count; ++i) close(out[i]);
  close(null_fd);
}

// A header whose cmsg_len is shorter than a header: (cmsg_len - CMSG_LEN(0))
// would underflow into billions of fds. Kernels never write one; the codec
// still refuses to read past it.
TEST_F(FdPassingTest, StopsAtAMalformedHeader) {
  alignas(struct cmsghdr) char control[RP_FDS_CONTROL_SPACE(2)] = {};
  struct msghdr msg {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(0) - 1;
  EXPECT_EQ(rp_cmsg_fd_count(&msg, c), 0u);
  int out[2];
  rp_fds_taken taken;
  rp_fds_take(&msg, out, 2, CountingClose, &taken);
  EXPECT_EQ(taken.count, 0u);
  EXPECT_TRUE(taken.other_control);
  EXPECT_EQ(g_closed, 0);
}

TEST_F(FdPassingTest, RefusesALengthBeyondTheBuffer) {
  alignas(struct cmsghdr) char control[RP_FDS_CONTROL_SPACE(1)] = {};
  struct msghdr msg {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * 64);
  EXPECT_EQ(rp_cmsg_fd_count(&msg, c), 0u);
  int out[2];
  rp_fds_taken taken;
  rp_fds_take(&msg, out, 2, CountingClose, &taken);
  EXPECT_EQ(taken.count, 0u);
  EXPECT_EQ(g_closed, 0);
}

}  // namespace
