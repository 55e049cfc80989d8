#include "reuseport_fixture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "fd_count.h"
#include "readiness.h"
#include "status_client.h"

namespace reuseport::testing {

std::string BrokerPath() { return REUSEPORT_TEST_BROKER; }
std::string ShimPath() { return REUSEPORT_TEST_SHIM; }
std::string LegacyKernelPath() { return REUSEPORT_TEST_LEGACY_KERNEL; }
std::string CtlPath() { return REUSEPORT_TEST_CTL; }
std::string RunPath() { return REUSEPORT_TEST_RUN; }

void UnderLegacyKernel(SubprocessOptions* options, const std::string& kernel) {
  std::vector<std::string> argv = {LegacyKernelPath(), "--kernel", kernel, "--"};
  argv.insert(argv.end(), options->argv.begin(), options->argv.end());
  options->argv = std::move(argv);
}

void WithShim(SubprocessOptions* options, const std::string& socket_path, const std::string& mode,
              const std::string& ports) {
  options->env.push_back({"LD_PRELOAD", ShimPath()});
  options->env.push_back({"REUSEPORT_SOCKET", socket_path});
  options->env.push_back({"REUSEPORT_MODE", mode});
  if (!ports.empty()) options->env.push_back({"REUSEPORT_PORTS", ports});
}

absl::StatusOr<BrokerProcess> BrokerProcess::Start(const std::string& dir, const BrokerOptions& options) {
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) return absl::ErrnoToStatus(errno, "pipe2");
  std::string socket_path = dir + "/reuseportd.sock";
  SubprocessOptions p;
  p.argv = {BrokerPath(), "--socket", socket_path, "--ready_fd", "3", "--log_level", options.log_level};
  p.argv.insert(p.argv.end(), options.extra_flags.begin(), options.extra_flags.end());
  p.unset_env = {"LD_PRELOAD", "REUSEPORT_SOCKET", "REUSEPORT_MODE", "REUSEPORT_PORTS"};
  p.stdout_path = dir + "/reuseportd.log";
  p.stderr_path = dir + "/reuseportd.log";
  p.inherited_fds = {{ready[1], 3}};
  if (options.legacy_kernel) UnderLegacyKernel(&p, options.kernel);
  p.argv.insert(p.argv.begin(), options.wrapper.begin(), options.wrapper.end());
  absl::StatusOr<Subprocess> process = Subprocess::Start(p);
  close(ready[1]);
  if (!process.ok()) {
    close(ready[0]);
    return process.status();
  }
  // Readiness: the broker writes READY=1 to fd 3 once its socket listens.
  struct pollfd pfd = {ready[0], POLLIN, 0};
  char buf[32] = {};
  ssize_t n = poll(&pfd, 1, 10000) == 1 ? read(ready[0], buf, sizeof(buf) - 1) : -1;
  close(ready[0]);
  if (n <= 0 || std::string(buf).find("READY=1") == std::string::npos) {
    return absl::UnavailableError(absl::StrCat("reuseportd did not become ready: ", process->ReadStdout()));
  }
  BrokerProcess broker(std::move(*process));
  broker.socket_path_ = socket_path;
  return broker;
}

absl::StatusOr<ctl::JsonValue> BrokerProcess::Status() const {
  absl::StatusOr<std::string> text = ctl::FetchStatus(socket_path_, RP_STATUS_JSON);
  if (!text.ok()) return text.status();
  return ctl::ParseJson(*text);
}

absl::Status BrokerProcess::WaitForMembers(int members, absl::Duration timeout) const {
  absl::Time deadline = absl::Now() + timeout;
  int seen = -1;
  // Polls the broker's own state (a round trip through its loop, 2 ms apart)
  // until it matches: a condition, not a guess at how long joining takes.
  while (absl::Now() < deadline) {
    absl::StatusOr<ctl::JsonValue> doc = Status();
    if (!doc.ok()) return doc.status();
    seen = 0;
    for (const auto& g : (*doc)["groups"].array) seen += static_cast<int>(g["members"].array.size());
    if (seen == members) return absl::OkStatus();
    usleep(2000);
  }
  return absl::DeadlineExceededError(absl::StrFormat("broker has %d members, expected %d", seen, members));
}

absl::Status WaitUntilStopped(pid_t pid, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    absl::StatusOr<std::string> stat = ReadFile(absl::StrFormat("/proc/%d/stat", pid));
    if (!stat.ok()) return stat.status();
    size_t paren = stat->rfind(')');
    if (paren != std::string::npos && paren + 2 < stat->size() && (*stat)[paren + 2] == 'T') return absl::OkStatus();
    usleep(1000);
  }
  return absl::DeadlineExceededError(absl::StrFormat("pid %d did not stop", pid));
}

absl::StatusOr<int> SettledFdCount(pid_t pid) {
  absl::StatusOr<int> best = CountOpenFds(pid);
  if (!best.ok()) return best;
  int unchanged = 0;
  for (int i = 0; i < 400 && unchanged < 20; ++i) {
    usleep(2000);
    absl::StatusOr<int> now = CountOpenFds(pid);
    if (!now.ok()) return now;
    if (*now < *best) {
      best = now;
      unchanged = 0;
    } else {
      ++unchanged;
    }
  }
  return best;
}

namespace {

// Why `base` cannot hold the integration tests' directories ("" if it can):
// members run as other uids (nobody) must reach them, and the brokers' Unix
// socket paths inside must fit sockaddr_un.
std::string TestDirBaseUnusable(const std::string& base) {
  // "<base>/reuseport-it-XXXXXX/" and the longest socket name a test uses.
  size_t longest = base.size() + sizeof("/reuseport-it-XXXXXX/") - 1 + 24;
  if (longest >= sizeof(sockaddr_un{}.sun_path)) {
    return absl::StrFormat("its socket paths would be longer than sockaddr_un allows (%d bytes)",
                           sizeof(sockaddr_un{}.sun_path) - 1);
  }
  for (std::string dir = base; !dir.empty(); dir = dir.substr(0, dir.rfind('/'))) {
    struct stat st {};
    if (stat(dir.c_str(), &st) != 0) return absl::StrCat(dir, ": ", strerror(errno));
    if ((st.st_mode & S_IXOTH) == 0) return absl::StrCat(dir, " is not searchable by other users");
  }
  return "";
}

}  // namespace

TempDir MakeTestDir() {
  // $TMPDIR where it works for these tests, else /tmp, saying why.
  std::string base = TempDir::Base();
  if (std::string why = TestDirBaseUnusable(base); !why.empty()) {
    static bool told = false;
    if (!told) fprintf(stderr, "integration tests: not using TMPDIR=%s (%s); using /tmp\n", base.c_str(), why.c_str());
    told = true;
    base = "/tmp";
  }
  absl::StatusOr<TempDir> dir = TempDir::CreateIn(base, "reuseport-it", 0777);
  if (!dir.ok()) {
    fprintf(stderr, "cannot create a temporary directory: %s\n", std::string(dir.status().message()).c_str());
    abort();
  }
  return std::move(*dir);
}

MemberOptions ShimmedMember(const std::vector<std::string>& argv, const std::string& id, const std::string& dir,
                            const BrokerProcess& broker, const std::string& mode) {
  MemberOptions m;
  m.process.argv = argv;
  WithShim(&m.process, broker.socket_path(), mode);
  UnderLegacyKernel(&m.process);
  m.id = id;
  m.dir = dir;
  return m;
}

absl::StatusOr<std::map<std::string, std::vector<std::string>>> ReadMemberLogs(const std::vector<MemberProcess>& members) {
  std::map<std::string, std::vector<std::string>> logs;
  for (const MemberProcess& m : members) {
    absl::StatusOr<std::vector<std::string>> lines = ReadLines(m.log_file);
    if (!lines.ok()) {
      logs[m.id] = {};  // a member that served nothing may never have created its log
      continue;
    }
    logs[m.id] = std::move(*lines);
  }
  return logs;
}

std::string CheckServedExactlyOnce(const std::vector<std::string>& tokens,
                                   const std::map<std::string, std::vector<std::string>>& logs) {
  std::map<std::string, int> seen;
  for (const auto& [id, lines] : logs) {
    for (const std::string& line : lines) ++seen[line];
  }
  std::string problems;
  int missing = 0, duplicated = 0, unknown = 0;
  std::set<std::string> sent(tokens.begin(), tokens.end());
  // Logs accumulate over a test; judge only the lines of this run ("r<run>-<i>").
  std::string prefix = tokens.empty() ? "" : tokens[0].substr(0, tokens[0].find('-') + 1);
  for (const std::string& t : tokens) {
    auto it = seen.find(t);
    if (it == seen.end()) {
      if (++missing <= 3) absl::StrAppend(&problems, "missing ", t, "; ");
    } else if (it->second > 1) {
      if (++duplicated <= 3) absl::StrAppend(&problems, t, " served ", it->second, " times; ");
    }
  }
  for (const auto& [t, n] : seen) {
    if (t.rfind(prefix, 0) != 0) continue;
    if (!sent.contains(t) && ++unknown <= 3) absl::StrAppend(&problems, "unexpected ", t, "; ");
  }
  if (missing + duplicated + unknown == 0) return "";
  return absl::StrFormat("%d missing, %d served twice, %d unexpected: %s", missing, duplicated, unknown, problems);
}

namespace {

// Free for a server that binds the wildcard address (members do by default),
// which also rules out any specific address holding the port.
bool PortFree(int type, uint16_t port) {
  int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  struct sockaddr_in a {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  a.sin_port = htons(port);
  bool free = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  close(fd);
  return free;
}

bool PortFreeForBoth(uint16_t port) { return PortFree(SOCK_STREAM, port) && PortFree(SOCK_DGRAM, port); }

unsigned& PortSeed() {
  static unsigned seed = static_cast<unsigned>(getpid()) * 2654435761u ^ static_cast<unsigned>(time(nullptr));
  return seed;
}

}  // namespace

uint16_t FreeLoopbackPort(int /*type*/) {
  // The kernel's choice for port 0 is an ephemeral port, which a concurrent
  // test's connect() may take as a source port the next moment: once, under
  // ASan, dnsmasq's TCP bind lost that race. Choose outside the range instead:
  // below it (from 10000 where there is room, clear of well-known services)
  // and above it.
  int low = 32768, high = 60999;
  if (FILE* f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re")) {
    if (fscanf(f, "%d %d", &low, &high) != 2) {
      low = 32768;
      high = 60999;
    }
    fclose(f);
  }
  struct Span {
    int first, last;
  };
  std::vector<Span> spans;
  if (low - 1 >= 10000 + 100) {
    spans.push_back({10000, low - 1});
  } else if (low - 1 >= 1024) {
    spans.push_back({1024, low - 1});
  }
  if (high + 1 <= 65535) spans.push_back({high + 1, 65535});
  int total = 0;
  for (const Span& s : spans) total += s.last - s.first + 1;
  if (total == 0) {  // the range is everything above 1023: take the risk
    spans = {{1024, 65535}};
    total = 65535 - 1024 + 1;
  }
  for (int attempt = 0; attempt < 200; ++attempt) {
    int pick = static_cast<int>(rand_r(&PortSeed()) % static_cast<unsigned>(total));
    for (const Span& s : spans) {
      if (pick <= s.last - s.first) {
        uint16_t port = static_cast<uint16_t>(s.first + pick);
        if (PortFreeForBoth(port)) return port;
        break;
      }
      pick -= s.last - s.first + 1;
    }
  }
  return 0;
}

uint16_t FreePrivilegedPort(uint16_t other_than) {
  // Upwards from a random start in the upper half, wrapping: low ports are
  // where the host's own services live.
  const int first = 512, count = 1024 - first;
  int start = static_cast<int>(rand_r(&PortSeed()) % count);
  for (int i = 0; i < count; ++i) {
    uint16_t port = static_cast<uint16_t>(first + (start + i) % count);
    if (port != other_than && PortFreeForBoth(port)) return port;
  }
  return 0;
}

std::string DescribeShares(const std::map<std::string, int>& per_member, int total) {
  std::string out;
  for (const auto& [id, n] : per_member) {
    absl::StrAppendFormat(&out, "%s=%d (%.1f%%) ", id, n, total ? 100.0 * n / total : 0.0);
  }
  return out;
}

std::string Rerouted::Describe() const {
  return absl::StrFormat("%d connection(s) rerouted by the broker (%d taken back from %d stall(s))", redirected, stolen,
                         stalls);
}

absl::StatusOr<Rerouted> ReadRerouted(const std::string& socket_path, uint16_t port) {
  absl::StatusOr<std::string> text = ctl::FetchStatus(socket_path, RP_STATUS_JSON);
  if (!text.ok()) return text.status();
  absl::StatusOr<ctl::JsonValue> doc = ctl::ParseJson(*text);
  if (!doc.ok()) return doc.status();
  Rerouted r;
  for (const ctl::JsonValue& g : (*doc)["groups"].array) {
    if (g["protocol"].AsString() != "tcp" || g["port"].AsNumber() != port) continue;
    for (const ctl::JsonValue& m : g["members"].array) {
      r.redirected += static_cast<int64_t>(m["redirected_away"].AsNumber());
      r.stolen += static_cast<int64_t>(m["stolen"].AsNumber());
      r.stalls += static_cast<int64_t>(m["stalls"].AsNumber());
    }
  }
  return r;
}

::testing::AssertionResult SharesFair(const std::map<std::string, int>& per_member, int total, double lo, double hi,
                                      size_t members, const Rerouted& during) {
  std::string shares = DescribeShares(per_member, total);
  if (per_member.size() != members || total == 0) {
    return ::testing::AssertionFailure() << per_member.size() << " of " << members << " members served: " << shares;
  }
  const double slack = static_cast<double>(std::max<int64_t>(during.redirected, 0));
  for (const auto& [id, n] : per_member) {
    if (n < lo * total - slack || n > hi * total + slack) {
      return ::testing::AssertionFailure() << id << " is outside " << lo << ".." << hi << " of " << total
                                           << (slack > 0 ? absl::StrCat(" widened by ", during.Describe()) : "")
                                           << ": " << shares;
    }
  }
  if (slack > 0) {
    return ::testing::AssertionSuccess() << "fair within " << lo << ".." << hi << " widened by " << during.Describe()
                                         << ": " << shares;
  }
  return ::testing::AssertionSuccess() << "fair within " << lo << ".." << hi << ": " << shares;
}

void ExpectSharesFair(const std::map<std::string, int>& per_member, int total, double lo, double hi, size_t members,
                      const Rerouted& during) {
  EXPECT_TRUE(SharesFair(per_member, total, lo, hi, members, during));
  if (during.redirected > 0) {
    printf("shares judged with room for what the broker moved: %s\n", during.Describe().c_str());
    fflush(stdout);
  }
  ::testing::Test::RecordProperty("rerouted", static_cast<int>(during.redirected));
}

bool SharesWithin(const std::map<std::string, int>& per_member, int total, double lo, double hi, size_t members) {
  if (per_member.size() != members || total == 0) return false;
  for (const auto& [id, n] : per_member) {
    double share = static_cast<double>(n) / total;
    if (share < lo || share > hi) return false;
  }
  return true;
}

void GroupTest::SetUp() {
  absl::StatusOr<BrokerProcess> b = BrokerProcess::Start(dir_.path(), broker_options_);
  ASSERT_TRUE(b.ok()) << b.status();
  broker_.emplace(std::move(*b));
}

MemberOptions GroupTest::Member(std::vector<std::string> argv, const std::string& id) {
  return ShimmedMember(argv, id, dir_.path(), *broker_);
}

std::vector<MemberProcess> GroupTest::StartMembers(std::vector<MemberOptions> members, uint16_t port) {
  absl::StatusOr<std::vector<MemberProcess>> started = StartMemberGroup(std::move(members), port);
  EXPECT_TRUE(started.ok()) << started.status() << "\nbroker log:\n" << broker_->process().ReadStdout();
  if (!started.ok()) return {};
  members_ += static_cast<int>(started->size());
  EXPECT_TRUE(broker_->WaitForMembers(members_).ok());
  return std::move(*started);
}

}  // namespace reuseport::testing
