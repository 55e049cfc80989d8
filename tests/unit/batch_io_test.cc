// The datagram path's batched calls, with and without recvmmsg/sendmmsg: the
// fallback must deliver the same messages in the same order.
#include "batch_io.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace reuseport::broker {
namespace {

// Sends `count` datagrams "0", "1", ... from one end of a datagram socketpair
// with SendBatch and reads them back with ReceiveBatch in batches of 4.
std::vector<std::string> RoundTrip(int count) {
  int sv[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
  std::vector<std::string> payloads;
  for (int i = 0; i < count; ++i) payloads.push_back(std::to_string(i));
  std::vector<struct iovec> out_iov(payloads.size());
  std::vector<struct mmsghdr> out(payloads.size());
  for (size_t i = 0; i < payloads.size(); ++i) {
    out_iov[i] = {payloads[i].data(), payloads[i].size()};
    memset(&out[i], 0, sizeof(out[i]));
    out[i].msg_hdr.msg_iov = &out_iov[i];
    out[i].msg_hdr.msg_iovlen = 1;
  }
  EXPECT_EQ(SendBatch(sv[0], out.data(), static_cast<unsigned>(out.size()), MSG_DONTWAIT), count);
  std::vector<std::string> got;
  for (;;) {
    char bufs[4][16];
    struct iovec iov[4];
    struct mmsghdr in[4];
    for (int i = 0; i < 4; ++i) {
      iov[i] = {bufs[i], sizeof(bufs[i])};
      memset(&in[i], 0, sizeof(in[i]));
      in[i].msg_hdr.msg_iov = &iov[i];
      in[i].msg_hdr.msg_iovlen = 1;
    }
    int n = ReceiveBatch(sv[1], in, 4, MSG_DONTWAIT);
    if (n < 0) {
      EXPECT_EQ(errno, EAGAIN);
      break;
    }
    for (int i = 0; i < n; ++i) got.emplace_back(bufs[i], in[i].msg_len);
  }
  close(sv[0]);
  close(sv[1]);
  return got;
}

std::vector<std::string> Numbers(int count) {
  std::vector<std::string> v;
  for (int i = 0; i < count; ++i) v.push_back(std::to_string(i));
  return v;
}

TEST(BatchIoTest, BatchedCallsDeliverInOrder) { EXPECT_EQ(RoundTrip(10), Numbers(10)); }

// The fallback is permanent for the process, as in the broker once the kernel
// said ENOSYS; ctest runs each test in a process of its own.
TEST(BatchIoTest, FallbackWithoutBatchedCallsDeliversTheSame) {
  ForgetBatchCallsForTesting();
  EXPECT_EQ(RoundTrip(10), Numbers(10));
  EXPECT_EQ(RoundTrip(0), Numbers(0));
}

}  // namespace
}  // namespace reuseport::broker
