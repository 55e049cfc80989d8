// The control protocol against a real broker running in a thread of this test:
// real Unix and TCP sockets, no daemon process, no sleeps.
#include "control_server.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/fsuid.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "broker.h"
#include "broker_in_thread.h"
#include "gtest/gtest.h"
#include "reuseport/address_codec.h"
#include "wire.h"

namespace reuseport::broker {
namespace {

using reuseport::testing::BrokerInThread;

UniqueFd Connect(const std::string& path) {
  UniqueFd fd(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  strcpy(addr.sun_path, path.c_str());
  EXPECT_EQ(connect(fd.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)), 0) << strerror(errno);
  return fd;
}

// Waits (bounded) for one record.
Record Receive(int fd) {
  struct pollfd p = {fd, POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 5000), 1) << "no reply within 5 s";
  std::vector<char> buffer;
  ReceiveResult r = ReceiveRecord(fd, buffer);
  EXPECT_EQ(r.status, ReceiveStatus::kRecord) << r.error.reason;
  return std::move(r.record);
}

Record Call(int fd, uint16_t opcode, const void* payload, size_t size, std::vector<int> fds = {}, uint64_t id = 1) {
  rp_header h = MakeHeader(opcode, static_cast<uint32_t>(size), id);
  EXPECT_EQ(SendRecord(fd, h, payload, size, nullptr, 0, fds, 0), 0);
  return Receive(fd);
}

std::string StatusJson(const std::string& path) {
  UniqueFd link = Connect(path);
  rp_status_request req{RP_STATUS_JSON, 0};
  rp_header h = MakeHeader(RP_OP_STATUS, sizeof(req), 3);
  EXPECT_EQ(SendRecord(link.get(), h, &req, sizeof(req), nullptr, 0, {}, 0), 0);
  std::string text;
  for (;;) {
    Record r = Receive(link.get());
    EXPECT_EQ(r.header.status, 0);
    text += r.trailing;
    if (!(r.header.flags & RP_FLAG_MORE)) break;
  }
  return text;
}

UniqueFd TcpSocket(uint16_t port, bool bind_it) {
  UniqueFd s(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (bind_it) {
    struct sockaddr_in a {};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(s.get(), reinterpret_cast<struct sockaddr*>(&a), sizeof(a)), 0) << strerror(errno);
  }
  return s;
}

uint16_t PortOf(int fd) {
  struct sockaddr_in a {};
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<struct sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

rp_bind_request BindRequest(uint16_t port) {
  rp_bind_request req{};
  req.address.family = AF_INET;
  req.address.port = port;
  uint32_t lo = htonl(INADDR_LOOPBACK);
  memcpy(req.address.addr, &lo, 4);
  req.protocol = RP_PROTO_TCP;
  return req;
}

class ControlServerTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(broker_.status().ok()) << broker_.status(); }
  BrokerInThread broker_;
};

TEST_F(ControlServerTest, UnknownOpcodeGetsAnErrorAndTheLinkKeepsWorking) {
  UniqueFd link = Connect(broker_.socket_path());
  Record r = Call(link.get(), 999, nullptr, 0, {}, 41);
  EXPECT_EQ(r.header.status, EOPNOTSUPP);
  EXPECT_EQ(r.header.request_id, 41u);
  EXPECT_TRUE(r.header.flags & RP_FLAG_REPLY);
  rp_status_request req{RP_STATUS_TEXT, 0};
  EXPECT_EQ(Call(link.get(), RP_OP_STATUS, &req, sizeof(req)).header.status, 0);
}

TEST_F(ControlServerTest, WrongVersionIsAnsweredWithOurs) {
  UniqueFd link = Connect(broker_.socket_path());
  rp_header h = MakeHeader(RP_OP_STATUS, 0, 8);
  h.version = 7;
  ASSERT_EQ(send(link.get(), &h, sizeof(h), 0), static_cast<ssize_t>(sizeof(h)));
  Record r = Receive(link.get());
  EXPECT_EQ(r.header.status, EPROTONOSUPPORT);
  EXPECT_EQ(r.header.version, RP_VERSION);
  EXPECT_EQ(r.header.request_id, 8u);
}

TEST_F(ControlServerTest, TruncatedZeroLengthAndGarbageRecordsAreRejected) {
  UniqueFd link = Connect(broker_.socket_path());
  ASSERT_EQ(send(link.get(), "short", 5, 0), 5);
  EXPECT_EQ(Receive(link.get()).header.status, EBADMSG);
  ASSERT_EQ(send(link.get(), "", 0, 0), 0);
  EXPECT_EQ(Receive(link.get()).header.status, EBADMSG);
  std::string garbage(200, '\xAB');
  ASSERT_EQ(send(link.get(), garbage.data(), garbage.size(), 0), 200);
  EXPECT_EQ(Receive(link.get()).header.status, EBADMSG);
  // Payload shorter than BIND needs.
  EXPECT_EQ(Call(link.get(), RP_OP_BIND, "xx", 2).header.status, EBADMSG);
}

TEST_F(ControlServerTest, BindNeedsExactlyOneTcpOrUdpSocket) {
  UniqueFd link = Connect(broker_.socket_path());
  rp_bind_request req = BindRequest(8080);
  EXPECT_EQ(Call(link.get(), RP_OP_BIND, &req, sizeof(req)).header.status, EBADMSG) << "no fd";
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  UniqueFd r(p[0]), w(p[1]);
  EXPECT_EQ(Call(link.get(), RP_OP_BIND, &req, sizeof(req), {r.get()}).header.status, ENOTSOCK);
  UniqueFd unix_socket(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(Call(link.get(), RP_OP_BIND, &req, sizeof(req), {unix_socket.get()}).header.status, ENOTSOCK);
  UniqueFd udp(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(Call(link.get(), RP_OP_BIND, &req, sizeof(req), {udp.get()}).header.status, EPROTOTYPE);
}

TEST_F(ControlServerTest, JoiningWithoutAGroupSaysSo) {
  UniqueFd link = Connect(broker_.socket_path());
  UniqueFd s = TcpSocket(0, false);
  rp_bind_request req = BindRequest(18123);
  EXPECT_EQ(Call(link.get(), RP_OP_BIND, &req, sizeof(req), {s.get()}).header.status, ENOENT);
}

// Two members starting at once: the one whose kernel bind lost asks the
// broker before the winner's BIND has arrived. It must wait for that group,
// not be told there is none (the program would see EADDRINUSE).
TEST_F(ControlServerTest, JoinWaitsForTheGroupAnotherLinkIsAboutToCreate) {
  UniqueFd creator_link = Connect(broker_.socket_path());  // opened, nothing sent yet: the shim before bind()
  UniqueFd s = TcpSocket(0, true);
  uint16_t port = PortOf(s.get());
  UniqueFd joiner_link = Connect(broker_.socket_path());
  UniqueFd joiner = TcpSocket(0, false);
  rp_bind_request join = BindRequest(port);
  rp_header h = MakeHeader(RP_OP_BIND, sizeof(join), 5);
  ASSERT_EQ(SendRecord(joiner_link.get(), h, &join, sizeof(join), nullptr, 0, {joiner.get()}, 0), 0);
  struct pollfd p = {joiner_link.get(), POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 50), 0) << "answered before the group exists";

  rp_bind_request create = BindRequest(0);
  ASSERT_EQ(Call(creator_link.get(), RP_OP_BIND, &create, sizeof(create), {s.get()}).header.status, 0);
  Record joined = Receive(joiner_link.get());
  EXPECT_EQ(joined.header.status, 0);
  EXPECT_EQ(joined.header.request_id, 5u);
  EXPECT_EQ(joined.fds.size(), 3u);
  EXPECT_NE(StatusJson(broker_.socket_path()).find("\"joins_waited\":1"), std::string::npos);
}

// The wait is bounded, and only while a link of the same uid has yet to say
// anything; meanwhile the waiting link gets EBUSY for anything else.
TEST_F(ControlServerTest, JoinWaitIsBoundedWhenNoGroupComes) {
  UniqueFd idle_link = Connect(broker_.socket_path());
  UniqueFd link = Connect(broker_.socket_path());
  UniqueFd s = TcpSocket(0, false);
  rp_bind_request join = BindRequest(18124);
  rp_header h = MakeHeader(RP_OP_BIND, sizeof(join), 6);
  ASSERT_EQ(SendRecord(link.get(), h, &join, sizeof(join), nullptr, 0, {s.get()}, 0), 0);
  rp_status_request status{RP_STATUS_TEXT, 0};
  Record busy = Call(link.get(), RP_OP_STATUS, &status, sizeof(status), {}, 7);
  EXPECT_EQ(busy.header.status, EBUSY);
  EXPECT_EQ(busy.header.request_id, 7u);
  Record answer = Receive(link.get());
  EXPECT_EQ(answer.header.status, ENOENT);
  EXPECT_EQ(answer.header.request_id, 6u);

  // Once the idle link has spoken, nobody is on the way: the answer is at once.
  EXPECT_EQ(Call(idle_link.get(), RP_OP_STATUS, &status, sizeof(status)).header.status, 0);
  UniqueFd link2 = Connect(broker_.socket_path());
  UniqueFd s2 = TcpSocket(0, false);
  Record at_once = Call(link2.get(), RP_OP_BIND, &join, sizeof(join), {s2.get()}, 8);
  EXPECT_EQ(at_once.header.status, ENOENT);
  EXPECT_NE(StatusJson(broker_.socket_path()).find("\"joins_waited\":1"), std::string::npos);
}

TEST_F(ControlServerTest, BoundSocketMakesAGroupThatHandsOverConnections) {
  UniqueFd link = Connect(broker_.socket_path());
  UniqueFd s = TcpSocket(0, true);
  uint16_t port = PortOf(s.get());
  rp_bind_request req = BindRequest(0);
  Record bound = Call(link.get(), RP_OP_BIND, &req, sizeof(req), {s.get()});
  ASSERT_EQ(bound.header.status, 0);
  ASSERT_EQ(bound.fds.size(), 3u);
  rp_member_reply reply;
  ASSERT_EQ(bound.payload.size(), sizeof(reply));
  memcpy(&reply, bound.payload.data(), sizeof(reply));
  EXPECT_EQ(reply.bound.port, port);

  rp_listen_request listen_req{16, 0};
  EXPECT_EQ(Call(link.get(), RP_OP_LISTEN, &listen_req, sizeof(listen_req)).header.status, 0);

  UniqueFd client(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  struct sockaddr_in a {};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(client.get(), reinterpret_cast<struct sockaddr*>(&a), sizeof(a)), 0);
  Record delivered = Receive(bound.fds[0].get());  // the member's channel end
  EXPECT_EQ(delivered.header.opcode, RP_OP_CONNECTION);
  ASSERT_EQ(delivered.fds.size(), 1u);
  rp_connection c;
  memcpy(&c, delivered.payload.data(), sizeof(c));
  EXPECT_EQ(c.peer.port, PortOf(client.get()));
  ASSERT_EQ(write(delivered.fds[0].get(), "hi", 2), 2);
  char buf[2];
  EXPECT_EQ(read(client.get(), buf, 2), 2);
}

TEST_F(ControlServerTest, AnotherUidGetsAddressInUseAndTheGroupIsUntouched) {
  UniqueFd owner_link = Connect(broker_.socket_path());
  UniqueFd s = TcpSocket(0, true);
  uint16_t port = PortOf(s.get());
  rp_bind_request req = BindRequest(0);
  Record bound = Call(owner_link.get(), RP_OP_BIND, &req, sizeof(req), {s.get()});
  ASSERT_EQ(bound.header.status, 0);

  // A socket created under another fsuid: the uid the kernel compares.
  int saved = setfsuid(4242);
  UniqueFd foreign(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  setfsuid(saved);
  struct stat st {};
  if (fstat(foreign.get(), &st) != 0 || st.st_uid != 4242) {
    GTEST_SKIP() << "setfsuid did not take effect (no CAP_SETUID here): cannot make another uid's socket";
  }
  UniqueFd other_link = Connect(broker_.socket_path());
  rp_bind_request join = BindRequest(port);
  EXPECT_EQ(Call(other_link.get(), RP_OP_BIND, &join, sizeof(join), {foreign.get()}).header.status, EADDRINUSE);

  UniqueFd same_uid(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  UniqueFd third_link = Connect(broker_.socket_path());
  EXPECT_EQ(Call(third_link.get(), RP_OP_BIND, &join, sizeof(join), {same_uid.get()}).header.status, 0);
  std::string json = StatusJson(broker_.socket_path());
  EXPECT_NE(json.find("\"refusals\":{\"other-uid\":1}"), std::string::npos) << json;
}

TEST_F(ControlServerTest, ClosedLinkEndsTheMembershipAndTheGroup) {
  {
    UniqueFd link = Connect(broker_.socket_path());
    UniqueFd s = TcpSocket(0, true);
    rp_bind_request req = BindRequest(0);
    ASSERT_EQ(Call(link.get(), RP_OP_BIND, &req, sizeof(req), {s.get()}).header.status, 0);
    EXPECT_NE(StatusJson(broker_.socket_path()).find("\"members\":[{"), std::string::npos);
  }
  // The status request is served after the close was processed (one loop, in order).
  std::string json;
  for (int i = 0; i < 100 && json.find("\"groups\":[]") == std::string::npos; ++i) json = StatusJson(broker_.socket_path());
  EXPECT_NE(json.find("\"groups\":[]"), std::string::npos) << json;
}

}  // namespace
}  // namespace reuseport::broker
