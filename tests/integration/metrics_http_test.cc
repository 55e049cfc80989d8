// The broker's metrics over HTTP (--metrics_address) and reuseportctl watch:
// what an operator's scraper and terminal see.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "load_client.h"
#include "member_paths.h"
#include "reuseport_fixture.h"

namespace reuseport::testing {
namespace {

int Connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a {};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<struct sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

std::string Http(uint16_t port, const std::string& request) {
  int fd = Connect(port);
  if (fd < 0) return "";
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return "";
  }
  std::string response;
  char buf[4096];
  struct pollfd p = {fd, POLLIN, 0};
  while (poll(&p, 1, 5000) == 1) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    response.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return response;
}

class MetricsHttpTest : public ::testing::Test {
 protected:
  TempDir dir_ = MakeTestDir();
};

TEST_F(MetricsHttpTest, ScrapeShowsPerMemberCountersAndSlowClientsDoNotBlockIt) {
  uint16_t metrics_port = FreeLoopbackPort();
  BrokerOptions options;
  options.extra_flags = {"--metrics_address", absl::StrCat("127.0.0.1:", metrics_port)};
  absl::StatusOr<BrokerProcess> broker = BrokerProcess::Start(dir_.path(), options);
  ASSERT_TRUE(broker.ok()) << broker.status();
  std::vector<MemberOptions> m;
  for (int i = 0; i < 2; ++i) m.push_back(ShimmedMember({TcpMemberPath()}, absl::StrCat("m", i), dir_.path(), *broker));
  absl::StatusOr<std::vector<MemberProcess>> members = StartMemberGroup(std::move(m));
  ASSERT_TRUE(members.ok()) << members.status();
  TcpLoadOptions load;
  load.port = (*members)[0].port;
  load.connections = 300;
  ASSERT_EQ(RunTcpLoad(load).successes, 300);

  // A client that connects and never sends a request must not hold up others.
  int silent = Connect(metrics_port);
  ASSERT_GE(silent, 0);
  std::string response = Http(metrics_port, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
  close(silent);
  ASSERT_EQ(response.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << response.substr(0, 200);
  EXPECT_NE(response.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
  std::string body = response.substr(response.find("\r\n\r\n") + 4);
  double dispatched = 0;
  int series = 0;
  for (absl::string_view line : absl::StrSplit(body, '\n', absl::SkipEmpty())) {
    if (!absl::ConsumePrefix(&line, "reuseport_connections_dispatched_total{")) continue;
    double v = 0;
    ASSERT_TRUE(absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &v)) << line;
    dispatched += v;
    ++series;
  }
  EXPECT_EQ(series, 2);
  EXPECT_EQ(dispatched, 300);
  EXPECT_EQ(Http(metrics_port, "GET /other HTTP/1.0\r\n\r\n").rfind("HTTP/1.0 404", 0), 0u);
  EXPECT_EQ(Http(metrics_port, "POST /metrics HTTP/1.0\r\n\r\n").rfind("HTTP/1.0 405", 0), 0u);
}

TEST_F(MetricsHttpTest, WatchPrintsALiveTableOfMembers) {
  absl::StatusOr<BrokerProcess> broker = BrokerProcess::Start(dir_.path());
  ASSERT_TRUE(broker.ok()) << broker.status();
  std::vector<MemberOptions> m;
  for (int i = 0; i < 2; ++i) m.push_back(ShimmedMember({TcpMemberPath()}, absl::StrCat("m", i), dir_.path(), *broker));
  absl::StatusOr<std::vector<MemberProcess>> members = StartMemberGroup(std::move(m));
  ASSERT_TRUE(members.ok()) << members.status();
  SubprocessOptions watch;
  watch.argv = {CtlPath(), "--socket", broker->socket_path(), "watch", "--interval=200ms", "--count", "3"};
  absl::StatusOr<Subprocess> w = Subprocess::Start(watch);
  ASSERT_TRUE(w.ok());
  TcpLoadOptions load;
  load.port = (*members)[0].port;
  load.connections = 200;
  EXPECT_EQ(RunTcpLoad(load).successes, 200);
  absl::StatusOr<int> status = w->Wait(absl::Seconds(10));
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << w->ReadStderr();
  std::string out = w->ReadStdout();
  int tables = 0, rows = 0;
  for (absl::string_view line : absl::StrSplit(out, '\n')) {
    if (absl::StartsWith(line, "PROTO ")) ++tables;
    if (absl::StartsWith(line, "tcp ")) ++rows;
  }
  EXPECT_EQ(tables, 3) << out;
  EXPECT_EQ(rows, 6) << "two members in each of three refreshes\n" << out;
}

}  // namespace
}  // namespace reuseport::testing
