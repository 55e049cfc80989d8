// A hostile or broken local client against a real reuseportd process: bad
// records of every kind, fds of the wrong kinds, silence, floods and a client
// that never reads. The broker answers or disconnects, keeps serving the
// members' traffic throughout, and leaks no fd.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "fd_count.h"
#include "gtest/gtest.h"
#include "host_features.h"
#include "load_client.h"
#include "member_paths.h"
#include "reuseport/protocol.h"
#include "reuseport_fixture.h"
#include "scm_rights.h"

namespace reuseport::testing {
namespace {

int Connect(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (connect(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

rp_header Header(uint16_t opcode, uint32_t payload_size, uint64_t id = 1) {
  return rp_request_header(opcode, payload_size, id);
}

// Sends bytes with fds; returns the reply's status, -1 for no reply (closed),
// -2 for no reply within 5 s.
int SendAndWait(int fd, const std::string& bytes, const std::vector<int>& fds = {}) {
  if (SendWithFds(fd, bytes.data(), bytes.size(), fds) < 0) return -1;
  struct pollfd p = {fd, POLLIN, 0};
  if (poll(&p, 1, 5000) != 1) return -2;
  char buf[RP_MAX_RECORD];
  alignas(struct cmsghdr) char rcontrol[CMSG_SPACE(sizeof(int) * 8)];
  struct iovec riov = {buf, sizeof(buf)};
  struct msghdr r {};
  r.msg_iov = &riov;
  r.msg_iovlen = 1;
  r.msg_control = rcontrol;
  r.msg_controllen = sizeof(rcontrol);
  ssize_t n = recvmsg(fd, &r, MSG_CMSG_CLOEXEC);
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&r); c != nullptr; c = CMSG_NXTHDR(&r, c)) {
    if (c->cmsg_type != SCM_RIGHTS) continue;
    for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); ++i) close(reinterpret_cast<int*>(CMSG_DATA(c))[i]);
  }
  if (n < static_cast<ssize_t>(sizeof(rp_header))) return -1;
  rp_header h;
  memcpy(&h, buf, sizeof(h));
  return h.status;
}

std::string Bytes(const rp_header& h, const std::string& payload = "") {
  return std::string(reinterpret_cast<const char*>(&h), sizeof(h)) + payload;
}

std::string BindPayload(uint16_t port, uint8_t protocol = RP_PROTO_TCP) {
  rp_bind_request req{};
  req.address.family = AF_INET;
  req.address.port = port;
  req.protocol = protocol;
  return std::string(reinterpret_cast<const char*>(&req), sizeof(req));
}

class HostileClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<BrokerProcess> b = BrokerProcess::Start(dir_.path());
    ASSERT_TRUE(b.ok()) << b.status();
    broker_.emplace(std::move(*b));
    std::vector<MemberOptions> m;
    for (int i = 0; i < 2; ++i) m.push_back(ShimmedMember({TcpMemberPath()}, absl::StrCat("m", i), dir_.path(), *broker_));
    absl::StatusOr<std::vector<MemberProcess>> started = StartMemberGroup(std::move(m));
    ASSERT_TRUE(started.ok()) << started.status();
    members_ = std::move(*started);
    ASSERT_TRUE(broker_->WaitForMembers(2).ok());
  }

  void ExpectStillServing(int connections) {
    TcpLoadOptions load;
    load.port = members_[0].port;
    load.connections = connections;
    TcpLoadResult r = RunTcpLoad(load);
    EXPECT_EQ(r.successes, connections) << r.Summary();
  }

  TempDir dir_ = MakeTestDir();
  std::optional<BrokerProcess> broker_;
  std::vector<MemberProcess> members_;
};

TEST_F(HostileClientTest, MalformedRecordsGetErrorsAndEveryoneElseIsServed) {
  absl::StatusOr<int> fds_before = SettledFdCount(broker_->process().pid());
  ASSERT_TRUE(fds_before.ok());
  int tried = 0;
  // Load runs while the hostile client works.
  TcpLoadResult during;
  std::thread load([&] {
    TcpLoadOptions o;
    o.port = members_[0].port;
    o.connections = 2000;
    o.concurrency = 8;
    during = RunTcpLoad(o);
  });

  int fd = Connect(broker_->socket_path());
  ASSERT_GE(fd, 0);
  rp_header bad_magic = Header(RP_OP_STATUS, 0);
  bad_magic.magic = 0x12345678;
  rp_header bad_version = Header(RP_OP_STATUS, 0);
  bad_version.version = 200;
  rp_header bad_size = Header(RP_OP_STATUS, 0);
  bad_size.header_size = 8;
  rp_header lying_payload = Header(RP_OP_BIND, 4096);
  struct Case {
    const char* name;
    std::string bytes;
    int expect;
  };
  std::vector<Case> cases = {
      {"truncated header", std::string(7, 'x'), EBADMSG},
      {"zero-length", std::string(), EBADMSG},
      {"bad magic", Bytes(bad_magic), EBADMSG},
      {"wrong version", Bytes(bad_version), EPROTONOSUPPORT},
      {"bad header size", Bytes(bad_size), EBADMSG},
      {"payload larger than record", Bytes(lying_payload), EBADMSG},
      {"oversized record", Bytes(Header(RP_OP_STATUS, 0), std::string(RP_MAX_RECORD + 10, 'o')), EMSGSIZE},
      {"unknown opcode", Bytes(Header(0x7777, 0)), EOPNOTSUPP},
      {"channel opcode on a link", Bytes(Header(RP_OP_CONNECTION, 0)), EOPNOTSUPP},
      {"reply flag on a request", Bytes([] { auto h = Header(RP_OP_STATUS, 8); h.flags = RP_FLAG_REPLY; return h; }(), std::string(8, 0)), EBADMSG},
      {"bind without fd", Bytes(Header(RP_OP_BIND, sizeof(rp_bind_request)), BindPayload(8080)), EBADMSG},
      {"listen before bind", Bytes(Header(RP_OP_LISTEN, 8), std::string(8, 0)), ENOTCONN},
      {"status with bad format", Bytes(Header(RP_OP_STATUS, 8), std::string("\x09\0\0\0\0\0\0\0", 8)), EINVAL},
  };
  int big = 1 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
  for (const Case& c : cases) {
    EXPECT_EQ(SendAndWait(fd, c.bytes), c.expect) << c.name;
    ++tried;
  }

  // fds of the wrong kinds, from none to the most one message can carry.
  std::vector<int> junk;
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  junk.push_back(p[0]);
  junk.push_back(p[1]);
  junk.push_back(open("/dev/null", O_RDONLY | O_CLOEXEC));
  junk.push_back(epoll_create1(EPOLL_CLOEXEC));
  junk.push_back(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  junk.push_back(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));  // UDP socket offered for a TCP bind
  std::string bind = Bytes(Header(RP_OP_BIND, sizeof(rp_bind_request)), BindPayload(8080));
  for (size_t i = 0; i < 5; ++i) {
    int status = SendAndWait(fd, bind, {junk[i]});
    EXPECT_TRUE(status == ENOTSOCK || status == EPROTOTYPE) << "fd kind " << i << ": " << status;
    ++tried;
  }
  EXPECT_EQ(SendAndWait(fd, bind, {junk[5]}), EPROTOTYPE);
  ++tried;
  for (int count : {2, 3, 4, 17, 253}) {
    std::vector<int> many;
    for (int i = 0; i < count; ++i) many.push_back(junk[i % junk.size()]);
    EXPECT_EQ(SendAndWait(fd, bind, many), EBADMSG) << count << " fds";
    ++tried;
  }
  for (int j : junk) close(j);
  close(fd);

  // A client that connects and never speaks, and many that come and go.
  int silent = Connect(broker_->socket_path());
  ASSERT_GE(silent, 0);
  for (int i = 0; i < 500; ++i) {
    int c = Connect(broker_->socket_path());
    ASSERT_GE(c, 0);
    close(c);
  }
  tried += 2;

  // A client that floods status requests and never reads the replies: the
  // broker gives up on it, not on everyone.
  int flood = Connect(broker_->socket_path());
  ASSERT_GE(flood, 0);
  fcntl(flood, F_SETFL, O_NONBLOCK);
  std::string status_request = Bytes(Header(RP_OP_STATUS, 8), std::string(8, 0));
  int sent = 0;
  bool disconnected = false;
  for (int i = 0; i < 400000 && !disconnected; ++i) {
    if (send(flood, status_request.data(), status_request.size(), MSG_NOSIGNAL) >= 0) {
      ++sent;
      continue;
    }
    if (errno != EAGAIN) {
      disconnected = true;
      break;
    }
    struct pollfd pw = {flood, POLLOUT, 0};
    if (poll(&pw, 1, 5000) != 1) break;  // the broker stopped reading us altogether
    if (pw.revents & (POLLHUP | POLLERR)) disconnected = true;
  }
  EXPECT_TRUE(disconnected) << "a client that never reads its replies is disconnected (sent " << sent << ")";
  ++tried;
  load.join();
  EXPECT_EQ(during.successes, 2000) << during.Summary();
  close(flood);
  close(silent);
  ExpectStillServing(500);

  // Every fd the hostile client passed was closed (the silent and flooding links
  // are gone too). Members hold the same links as before.
  absl::Status settled = broker_->WaitForMembers(2);
  ASSERT_TRUE(settled.ok());
  absl::StatusOr<int> fds_after = SettledFdCount(broker_->process().pid());
  ASSERT_TRUE(fds_after.ok());
  EXPECT_EQ(*fds_after, *fds_before) << "the broker leaked fds";
  EXPECT_TRUE(broker_->process().Running());
  RecordProperty("hostile_cases", tried);
  RecordProperty("flood_requests_sent", sent);
  std::string log = broker_->process().ReadStdout();
  EXPECT_NE(log.find("rejected message"), std::string::npos);
  EXPECT_NE(log.find("suppressed"), std::string::npos) << "repeated complaints are rate-limited";
}

TEST_F(HostileClientTest, UnprivilegedClientCannotJoinAPrivilegedPortDirectly) {
  REUSEPORT_SKIP_IF_UNAVAILABLE(RootUnavailable("the client runs as nobody"));
  // Not through the shim (which would stop at the kernel's EACCES): a raw
  // client of uid 65534 asks the broker for port 80 with its own socket.
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(100);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int fd = Connect(broker_->socket_path());
    if (fd < 0) _exit(101);
    int status = SendAndWait(fd, Bytes(Header(RP_OP_BIND, sizeof(rp_bind_request)), BindPayload(80)), {s});
    _exit(status == EACCES ? 0 : 102);
  }
  int wstatus = 0;
  ASSERT_EQ(waitpid(child, &wstatus, 0), child);
  EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << DescribeWaitStatus(wstatus);
  absl::StatusOr<ctl::JsonValue> status = broker_->Status();
  ASSERT_TRUE(status.ok());
  EXPECT_EQ((*status)["refusals"]["privileged-port"].AsNumber(), 1);
}

}  // namespace
}  // namespace reuseport::testing
