// The wire codec: framing checks, fd ownership on every path, and the empty
// record / end-of-stream distinction of SOCK_SEQPACKET.
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "unique_fd.h"

namespace reuseport::broker {
namespace {

struct Pair {
  UniqueFd a, b;
};

Pair MakePair() {
  int sv[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  return {UniqueFd(sv[0]), UniqueFd(sv[1])};
}

int OpenFdCount() {
  int n = 0;
  for (int fd = 0; fd < 4096; ++fd) {
    if (fcntl(fd, F_GETFD) >= 0) ++n;
  }
  return n;
}

std::string Bytes(const rp_header& h, const std::string& rest = "") {
  return std::string(reinterpret_cast<const char*>(&h), sizeof(h)) + rest;
}

TEST(ParseRecordTest, AcceptsWellFormedRecord) {
  rp_header h = MakeHeader(RP_OP_LISTEN, 8, 42);
  std::string data = Bytes(h, std::string(8, 'p') + "trail");
  Record r;
  RecordError e;
  ASSERT_TRUE(ParseRecord(absl::MakeConstSpan(data.data(), data.size()), false, &r, &e)) << e.reason;
  EXPECT_EQ(r.header.request_id, 42u);
  EXPECT_EQ(r.payload, std::string(8, 'p'));
  EXPECT_EQ(r.trailing, "trail");
}

TEST(ParseRecordTest, RejectsEachFramingError) {
  struct Case {
    const char* name;
    std::string data;
    bool truncated;
    int error;
  };
  rp_header good = MakeHeader(RP_OP_BIND, 0, 1);
  rp_header bad_magic = good;
  bad_magic.magic = 0xdeadbeef;
  rp_header bad_version = good;
  bad_version.version = 99;
  rp_header bad_size = good;
  bad_size.header_size = 16;
  rp_header long_payload = good;
  long_payload.payload_size = 1000;
  std::vector<Case> cases = {
      {"short", std::string(10, 'x'), false, EBADMSG},
      {"empty", std::string(), false, EBADMSG},
      {"magic", Bytes(bad_magic), false, EBADMSG},
      {"version", Bytes(bad_version), false, EPROTONOSUPPORT},
      {"header_size", Bytes(bad_size), false, EBADMSG},
      {"payload_size", Bytes(long_payload, "abc"), false, EBADMSG},
      {"truncated", Bytes(good), true, EMSGSIZE},
  };
  for (const Case& c : cases) {
    Record r;
    RecordError e;
    EXPECT_FALSE(ParseRecord(absl::MakeConstSpan(c.data.data(), c.data.size()), c.truncated, &r, &e)) << c.name;
    EXPECT_EQ(e.error, c.error) << c.name << ": " << e.reason;
    EXPECT_FALSE(e.reason.empty()) << c.name;
  }
}

TEST(ParseRecordTest, WrongVersionStillYieldsRequestIdForTheReply) {
  rp_header h = MakeHeader(RP_OP_BIND, 0, 77);
  h.version = 2;
  std::string data = Bytes(h);
  Record r;
  RecordError e;
  EXPECT_FALSE(ParseRecord(absl::MakeConstSpan(data.data(), data.size()), false, &r, &e));
  EXPECT_TRUE(e.header_readable);
  EXPECT_EQ(e.header.request_id, 77u);
}

TEST(ReceiveRecordTest, RoundTripsPayloadTrailingAndFds) {
  Pair p = MakePair();
  int pipefd[2];
  ASSERT_EQ(pipe2(pipefd, O_CLOEXEC), 0);
  UniqueFd r0(pipefd[0]), w0(pipefd[1]);
  rp_listen_request req{64, 0};
  rp_header h = MakeHeader(RP_OP_LISTEN, sizeof(req), 5);
  ASSERT_EQ(SendRecord(p.a.get(), h, &req, sizeof(req), "tail", 4, {r0.get(), w0.get()}, 0), 0);
  std::vector<char> buffer;
  ReceiveResult got = ReceiveRecord(p.b.get(), buffer);
  ASSERT_EQ(got.status, ReceiveStatus::kRecord) << got.error.reason;
  EXPECT_EQ(got.record.payload.size(), sizeof(req));
  EXPECT_EQ(got.record.trailing, "tail");
  ASSERT_EQ(got.record.fds.size(), 2u);
  // The received write end works: the pipe is really ours.
  ASSERT_EQ(write(got.record.fds[1].get(), "x", 1), 1);
  char c;
  EXPECT_EQ(read(r0.get(), &c, 1), 1);
}

TEST(ReceiveRecordTest, TooManyFdsAreClosedAndTheRecordRejected) {
  Pair p = MakePair();
  int before = OpenFdCount();
  {
    std::vector<int> fds;
    for (int i = 0; i < 10; ++i) fds.push_back(open("/dev/null", O_RDONLY | O_CLOEXEC));
    rp_header h = MakeHeader(RP_OP_BIND, 0, 9);
    // SendRecord refuses more than RP_MAX_FDS, so build the message by hand.
    struct iovec iov = {&h, sizeof(h)};
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * 10)];
    struct msghdr msg {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * 10);
    memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * 10);
    ASSERT_GE(sendmsg(p.a.get(), &msg, 0), 0);
    for (int fd : fds) close(fd);
  }
  std::vector<char> buffer;
  ReceiveResult got = ReceiveRecord(p.b.get(), buffer);
  EXPECT_EQ(got.status, ReceiveStatus::kRejected);
  EXPECT_EQ(got.error.error, EBADMSG);
  EXPECT_EQ(got.error.header.request_id, 9u);
  EXPECT_EQ(OpenFdCount(), before) << "every received fd must be closed";
}

TEST(ReceiveRecordTest, EmptyRecordIsRejectedNotMistakenForEndOfStream) {
  Pair p = MakePair();
  ASSERT_EQ(send(p.a.get(), "", 0, 0), 0);
  std::vector<char> buffer;
  ReceiveResult got = ReceiveRecord(p.b.get(), buffer);
  EXPECT_EQ(got.status, ReceiveStatus::kRejected);
  EXPECT_EQ(got.error.error, EBADMSG);
  p.a.reset();
  got = ReceiveRecord(p.b.get(), buffer);
  EXPECT_EQ(got.status, ReceiveStatus::kClosed);
}

TEST(ReceiveRecordTest, WouldBlockWhenNothingQueued) {
  Pair p = MakePair();
  std::vector<char> buffer;
  EXPECT_EQ(ReceiveRecord(p.b.get(), buffer).status, ReceiveStatus::kWouldBlock);
}

TEST(ReceiveRecordTest, OversizedRecordIsRejected) {
  Pair p = MakePair();
  int big = 1 << 20;
  setsockopt(p.a.get(), SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
  rp_header h = MakeHeader(RP_OP_STATUS, 0, 3);
  std::string data = Bytes(h, std::string(RP_MAX_RECORD + 100, 'z'));
  ASSERT_EQ(send(p.a.get(), data.data(), data.size(), 0), static_cast<ssize_t>(data.size()));
  std::vector<char> buffer;
  ReceiveResult got = ReceiveRecord(p.b.get(), buffer);
  EXPECT_EQ(got.status, ReceiveStatus::kRejected);
  EXPECT_EQ(got.error.error, EMSGSIZE);
}

}  // namespace
}  // namespace reuseport::broker
