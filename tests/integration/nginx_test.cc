// Debian's nginx with `listen ... reuseport` and several workers: refused by
// the 3.2 kernel alone, serving through the shim, with connections spread over
// the workers.
#include <netinet/in.h>
#include <signal.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "host_features.h"
#include "readiness.h"
#include "reuseport_fixture.h"

namespace reuseport::testing {
namespace {

constexpr int kWorkers = 3;

std::string NginxPath() {
  std::string found = FindProgram("nginx");
  return found.empty() ? "nginx" : found;
}

std::string WriteConfig(const std::string& dir, uint16_t port) {
  std::string conf = dir + "/nginx.conf";
  std::ofstream out(conf);
  out << "daemon off;\n"
      << "master_process on;\n"
      << "worker_processes " << kWorkers << ";\n"
      << "user root;\n"
      << "pid " << dir << "/nginx.pid;\n"
      << "error_log " << dir << "/error.log info;\n"
      << "events { worker_connections 256; }\n"
      << "http {\n"
      << "  access_log off;\n"
      << "  client_body_temp_path " << dir << "/body;\n"
      << "  proxy_temp_path " << dir << "/proxy;\n"
      << "  fastcgi_temp_path " << dir << "/fastcgi;\n"
      << "  uwsgi_temp_path " << dir << "/uwsgi;\n"
      << "  scgi_temp_path " << dir << "/scgi;\n"
      << "  server {\n"
      << "    listen 127.0.0.1:" << port << " reuseport;\n"
      << "    location / { return 200 \"$pid\\n\"; }\n"
      << "  }\n"
      << "}\n";
  return conf;
}

// One HTTP/1.0 request; returns the body (the worker's pid) or "" on failure.
std::string Get(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a {};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string response;
  if (connect(fd, reinterpret_cast<struct sockaddr*>(&a), sizeof(a)) == 0) {
    const char request[] = "GET / HTTP/1.0\r\nHost: test\r\n\r\n";
    if (write(fd, request, sizeof(request) - 1) == sizeof(request) - 1) {
      char buf[1024];
      ssize_t n;
      while ((n = read(fd, buf, sizeof(buf))) > 0) response.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  size_t body = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.1 200", 0) != 0 || body == std::string::npos) return "";
  std::string pid = response.substr(body + 4);
  while (!pid.empty() && (pid.back() == '\n' || pid.back() == '\r')) pid.pop_back();
  return pid;
}

class NginxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    REUSEPORT_REQUIRE_PROGRAM(NginxPath(), "nginx-light");
  }
  TempDir dir_ = MakeTestDir();
};

TEST_F(NginxTest, RefusedByTheOldKernelAlone) {
  uint16_t port = FreeLoopbackPort();
  SubprocessOptions p;
  p.argv = {NginxPath(), "-c", WriteConfig(dir_.path(), port), "-p", dir_.path()};
  UnderLegacyKernel(&p);
  absl::StatusOr<Subprocess> nginx = Subprocess::Start(p);
  ASSERT_TRUE(nginx.ok()) << nginx.status();
  absl::StatusOr<int> status = nginx->Wait(absl::Seconds(20));
  ASSERT_TRUE(status.ok()) << "nginx should exit on its own";
  EXPECT_FALSE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  absl::StatusOr<std::string> log = ReadFile(dir_.path() + "/error.log");
  std::string text = log.ok() ? *log : nginx->ReadStderr();
  EXPECT_NE(text.find("SO_REUSEPORT"), std::string::npos) << text;
}

TEST_F(NginxTest, WorkersShareThePortThroughTheShimAndSplitTheLoad) {
  absl::StatusOr<BrokerProcess> broker = BrokerProcess::Start(dir_.path());
  ASSERT_TRUE(broker.ok()) << broker.status();
  uint16_t port = FreeLoopbackPort();
  SubprocessOptions p;
  p.argv = {NginxPath(), "-c", WriteConfig(dir_.path(), port), "-p", dir_.path()};
  WithShim(&p, broker->socket_path());
  UnderLegacyKernel(&p);
  absl::StatusOr<Subprocess> nginx = Subprocess::Start(p);
  ASSERT_TRUE(nginx.ok()) << nginx.status();
  // nginx opens one listener per worker (reuseport), each a member.
  absl::Status joined = broker->WaitForMembers(kWorkers, absl::Seconds(20));
  ASSERT_TRUE(joined.ok()) << joined << "\nnginx: " << nginx->ReadStderr() << "\nbroker: " << broker->process().ReadStdout();

  std::map<std::string, int> by_worker;
  const int requests = 900;
  int failures = 0;
  absl::StatusOr<Rerouted> before = ReadRerouted(broker->socket_path(), port);
  ASSERT_TRUE(before.ok()) << before.status();
  for (int i = 0; i < requests; ++i) {
    std::string pid = Get(port);
    if (pid.empty()) {
      ++failures;
    } else {
      ++by_worker[pid];
    }
  }
  absl::StatusOr<Rerouted> after = ReadRerouted(broker->socket_path(), port);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(by_worker.size(), static_cast<size_t>(kWorkers)) << DescribeShares(by_worker, requests - failures);
  ExpectSharesFair(by_worker, requests - failures, 0.20, 0.47, kWorkers, *after - *before);
  RecordProperty("shares", DescribeShares(by_worker, requests - failures));
  ASSERT_TRUE(nginx->Signal(SIGQUIT).ok());  // graceful shutdown
  absl::StatusOr<int> status = nginx->Wait(absl::Seconds(20));
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << DescribeWaitStatus(*status);
  EXPECT_TRUE(broker->WaitForMembers(0).ok()) << "the workers' listeners leave with nginx";
}

}  // namespace
}  // namespace reuseport::testing
