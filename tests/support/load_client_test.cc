// The load clients must report what really happened, including every kind of
// failure, and always end. These tests use tiny in-process servers whose
// misbehaviour is known.
#include "load_client.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "socket_address.h"
#include "status_macros.h"

namespace reuseport::testing {
namespace {

// A socket bound to 127.0.0.1 on an ephemeral port, closed on destruction.
class BoundSocket {
 public:
  explicit BoundSocket(int type) : fd_(socket(AF_INET, type | SOCK_CLOEXEC, 0)) {
    SocketAddress any = *SocketAddress::Parse("127.0.0.1", 0);
    if (fd_ >= 0 && bind(fd_, any.get(), any.size()) == 0) port_ = SocketAddress::LocalOf(fd_)->port();
  }
  ~BoundSocket() {
    if (fd_ >= 0) close(fd_);
  }
  int fd() const { return fd_; }
  uint16_t port() const { return port_; }

 private:
  int fd_;
  uint16_t port_ = 0;
};

// Accepts `count` connections; for each reads the request and sends `reply`
// (nothing if empty) before closing.
std::thread ServeTcp(int listen_fd, int count, std::string reply) {
  return std::thread([=] {
    for (int i = 0; i < count; i++) {
      int fd = accept(listen_fd, nullptr, nullptr);
      if (fd < 0) return;
      char buf[256];
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      (void)n;
      if (!reply.empty()) send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
      close(fd);
    }
  });
}

TEST(TcpLoadTest, CountsRefusedConnections) {
  BoundSocket not_listening(SOCK_STREAM);  // holds the port; connecting gets an RST
  ASSERT_NE(not_listening.port(), 0);
  TcpLoadResult result = RunTcpLoad({.port = not_listening.port(), .connections = 20, .concurrency = 5});
  EXPECT_EQ(result.attempted, 20);
  EXPECT_EQ(result.refused, 20) << result.Summary();
  EXPECT_EQ(result.successes, 0);
  EXPECT_FALSE(result.failure_examples.empty());
}

TEST(TcpLoadTest, TimesOutWhenNobodyAnswers) {
  BoundSocket listener(SOCK_STREAM);
  ASSERT_EQ(listen(listener.fd(), 64), 0);  // the kernel completes handshakes; nobody accepts
  absl::Time start = absl::Now();
  TcpLoadResult result = RunTcpLoad({.port = listener.port(),
                                     .connections = 8,
                                     .concurrency = 8,
                                     .connection_timeout = absl::Milliseconds(200)});
  EXPECT_EQ(result.timeout, 8) << result.Summary();
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

TEST(TcpLoadTest, RecordsRepliesAndRejectsOnesForOtherTokens) {
  BoundSocket listener(SOCK_STREAM);
  ASSERT_EQ(listen(listener.fd(), 64), 0);
  std::thread server = ServeTcp(listener.fd(), 3, "m1 someone-else\n");
  TcpLoadResult result = RunTcpLoad({.port = listener.port(), .connections = 3, .concurrency = 1});
  server.join();
  EXPECT_EQ(result.bad_reply, 3) << result.Summary();
  EXPECT_TRUE(result.replies.empty());
}

TEST(TcpLoadTest, CountsConnectionsClosedWithoutReply) {
  BoundSocket listener(SOCK_STREAM);
  ASSERT_EQ(listen(listener.fd(), 64), 0);
  std::thread server = ServeTcp(listener.fd(), 4, "");
  TcpLoadResult result = RunTcpLoad({.port = listener.port(), .connections = 4, .concurrency = 2});
  server.join();
  EXPECT_EQ(result.closed, 4) << result.Summary();
}

TEST(TcpLoadTest, GoodRepliesAreParsed) {
  BoundSocket listener(SOCK_STREAM);
  ASSERT_EQ(listen(listener.fd(), 64), 0);
  // One connection at a time with a fixed prefix, so the token is known.
  std::thread server = ServeTcp(listener.fd(), 1, "member-7 fixed0 inherit-ok\n");
  TcpLoadResult result = RunTcpLoad(
      {.port = listener.port(), .connections = 1, .concurrency = 1, .token_prefix = "fixed"});
  server.join();
  ASSERT_EQ(result.successes, 1) << result.Summary();
  EXPECT_EQ(result.per_member["member-7"], 1);
  EXPECT_EQ(result.replies["fixed0"].responder, "member-7");
  EXPECT_EQ(result.replies["fixed0"].rest, "fixed0 inherit-ok");
  EXPECT_EQ(result.tokens, std::vector<std::string>{"fixed0"});
}

TEST(TcpLoadTest, BadTargetFailsEveryConnection) {
  TcpLoadResult result = RunTcpLoad({.host = "not-an-address", .port = 1, .connections = 3});
  EXPECT_EQ(result.other, 3);
  EXPECT_EQ(result.attempted, 3);
}

TEST(UdpFlowsTest, LostWhenNobodyAnswersAndAlwaysEnds) {
  BoundSocket silent(SOCK_DGRAM);
  absl::Time start = absl::Now();
  UdpFlowResult result = RunUdpFlows({.port = silent.port(),
                                      .flows = 4,
                                      .datagrams_per_flow = 2,
                                      .reply_timeout = absl::Milliseconds(50),
                                      .retries = 1});
  EXPECT_EQ(result.lost, 8) << result.Summary();
  EXPECT_EQ(result.datagrams_sent, 16);  // each sent twice
  EXPECT_EQ(result.flows_without_reply(), 4);
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

// Answers `count` datagrams as "<id> <payload> extra", alternating between two
// ids, from `reply_fd` (which may be another socket than the one receiving).
std::thread ServeUdp(int receive_fd, int reply_fd, int count) {
  return std::thread([=] {
    for (int i = 0; i < count; i++) {
      char buf[256];
      sockaddr_storage from{};
      socklen_t from_len = sizeof(from);
      ssize_t n = recvfrom(receive_fd, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &from_len);
      if (n < 0) return;
      std::string reply = absl::StrCat("s", i % 2, " ", std::string(buf, static_cast<size_t>(n)), " extra");
      sendto(reply_fd, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), from_len);
    }
  });
}

TEST(UdpFlowsTest, DetectsBrokenAffinityAndWrongReplySource) {
  BoundSocket server(SOCK_DGRAM);
  BoundSocket other_port(SOCK_DGRAM);
  std::thread thread = ServeUdp(server.fd(), other_port.fd(), 6);
  UdpFlowResult result = RunUdpFlows({.port = server.port(), .flows = 3, .datagrams_per_flow = 2,
                                      .concurrency = 1});
  thread.join();
  EXPECT_EQ(result.replies, 6) << result.Summary();
  EXPECT_EQ(result.source_mismatches, 6);
  EXPECT_EQ(result.flows_with_several_responders(), 3);  // s0 then s1 for every flow
  EXPECT_EQ(result.per_member["s0"], 3);
  EXPECT_EQ(result.reply_suffixes["extra"], 6);
  ASSERT_EQ(result.flow_source_ports.size(), 3u);
  EXPECT_NE(result.flow_source_ports[0], result.flow_source_ports[1]);
}

TEST(UdpFlowsTest, CorrectServerPassesEveryCheck) {
  BoundSocket server(SOCK_DGRAM);
  std::thread thread = ServeUdp(server.fd(), server.fd(), 1);
  UdpFlowResult result = RunUdpFlows({.port = server.port(), .flows = 1, .datagrams_per_flow = 1});
  thread.join();
  EXPECT_EQ(result.replies, 1) << result.Summary();
  EXPECT_EQ(result.source_mismatches, 0);
  EXPECT_EQ(result.flows_with_several_responders(), 0);
  EXPECT_EQ(result.lost + result.bad_replies + result.setup_errors, 0);
}

}  // namespace
}  // namespace reuseport::testing
