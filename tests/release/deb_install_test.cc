// The release's .deb on this machine, as an operator would use it: dpkg -i,
// the broker running (started by the package, or by its init script where
// invoke-rc.d declines: a machine without a runlevel), servers started with
// the installed reuseport-run --ports and its defaults (the installed shim,
// the socket under /run/reuseport) on the pretend Linux 3.2, the installed
// reuseportctl; then dpkg --purge leaves nothing behind: no file, no
// configuration, no boot link, no run directory, no process.
//
// It installs into the real system, so it needs root, and it steps back from
// a machine where reuseport is already installed or its run directory is in
// use. Whatever happens, the package is purged at the end.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "elf_file.h"
#include "gtest/gtest.h"
#include "json_value.h"
#include "load_client.h"
#include "member_paths.h"
#include "member_process.h"
#include "orphan_reaper.h"
#include "readiness.h"
#include "release_files.h"
#include "release_test.h"
#include "reuseport_fixture.h"
#include "status_macros.h"

namespace reuseport::testing {
namespace {

namespace fs = std::filesystem;

constexpr char kRunDir[] = "/run/reuseport";

bool Installed() {
  std::string out;
  absl::StatusOr<int> s = RunToCompletion({"dpkg-query", "-W", "-f=${Status}", "reuseport"}, &out);
  return s.ok() && ExitedWith(*s, 0) && absl::StrContains(out, "install ok installed");
}

// dpkg, waiting out another dpkg or apt holding the lock (a shared machine).
absl::StatusOr<int> Dpkg(const std::vector<std::string>& args, std::string* out) {
  std::vector<std::string> argv = {"dpkg"};
  argv.insert(argv.end(), args.begin(), args.end());
  absl::Time deadline = absl::Now() + absl::Minutes(3);
  for (;;) {
    absl::StatusOr<int> s = RunToCompletion(argv, out, {{"DEBIAN_FRONTEND", "noninteractive"}}, absl::Minutes(3));
    if (!s.ok() || ExitedWith(*s, 0) || !absl::StrContains(*out, "lock") || absl::Now() > deadline) return s;
    absl::SleepFor(absl::Seconds(1));
  }
}

// Processes running the installed broker (a successor's /proc/PID/exe is the
// same file).
std::vector<pid_t> InstalledBrokers() {
  std::vector<pid_t> pids;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    int pid = 0;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &pid)) continue;
    std::error_code ec;
    fs::path exe = fs::read_symlink(entry.path() / "exe", ec);
    if (!ec && absl::StartsWith(exe.string(), "/usr/sbin/reuseportd")) pids.push_back(pid);
  }
  return pids;
}

class DebInstallTest : public ReleaseTest {
 protected:
  void SetUp() override {
    ReleaseTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (geteuid() != 0) GTEST_SKIP() << "needs root: it installs the .deb into this system";
    if (access("/usr/bin/dpkg", X_OK) != 0) GTEST_SKIP() << "no dpkg: not a Debian system";
    if (Installed()) GTEST_SKIP() << "reuseport is installed on this machine; this test will not touch it";
    if (access(kRunDir, F_OK) == 0) GTEST_SKIP() << kRunDir << " exists: a broker may be serving there";
  }

  void TearDown() override {
    if (!release_.deb.empty() && Installed()) {
      std::string out;
      absl::StatusOr<int> s = Dpkg({"--purge", "reuseport"}, &out);
      EXPECT_TRUE(s.ok() && ExitedWith(*s, 0)) << "cleanup: dpkg --purge: " << out;
    }
  }

  absl::StatusOr<int> Members() const {
    std::string out;
    absl::StatusOr<int> s = RunToCompletion({"/usr/bin/reuseportctl", "status", "--json"}, &out);
    if (!s.ok()) return s.status();
    if (!ExitedWith(*s, 0)) return absl::UnavailableError(out);
    absl::StatusOr<ctl::JsonValue> doc = ctl::ParseJson(out);
    if (!doc.ok()) return doc.status();
    int n = 0;
    for (const ctl::JsonValue& g : (*doc)["groups"].array) n += static_cast<int>(g["members"].array.size());
    return n;
  }

  TempDir dir_ = MakeTestDir();
  OrphanReaper reaper_;  // the broker the init script starts is our orphan
};

TEST_F(DebInstallTest, InstallServeAndPurgeLeavesNothing) {
  std::string out;
  absl::StatusOr<int> s = Dpkg({"-i", release_.deb}, &out);
  ASSERT_OK(s);
  ASSERT_TRUE(ExitedWith(*s, 0)) << "dpkg -i: " << out;
  ASSERT_TRUE(Installed());

  // What dpkg says it installed, and where.
  std::string listed;
  ASSERT_OK(RunToCompletion({"dpkg", "-L", "reuseport"}, &listed));
  std::vector<std::string> files;
  for (absl::string_view line : absl::StrSplit(listed, '\n', absl::SkipEmpty())) {
    std::string path(absl::StripAsciiWhitespace(line));
    if (fs::is_regular_file(path)) files.push_back(path);
  }
  EXPECT_EQ(files.size(), 23u) << listed;
  absl::StatusOr<ElfFacts> broker_elf = ReadElfFacts("/usr/sbin/reuseportd");
  ASSERT_OK(broker_elf);
  EXPECT_FALSE(broker_elf->has_interpreter) << "the installed broker is static";
  bool boot_link = false;
  for (const char* rc : {"/etc/rc2.d", "/etc/rc3.d"}) {
    if (!fs::is_directory(rc)) continue;
    for (const auto& e : fs::directory_iterator(rc)) {
      boot_link |= absl::StartsWith(e.path().filename().string(), "S") &&
                   absl::EndsWith(e.path().filename().string(), "reuseportd");
    }
  }
  EXPECT_TRUE(boot_link) << "update-rc.d did not enable the script at boot";

  // The broker: started by the package if invoke-rc.d let it, else by the
  // init script (on the pretend 3.2), as an operator would.
  bool started_by_package = !InstalledBrokers().empty();
  if (!started_by_package) {
    std::string start;
    absl::StatusOr<int> st = RunToCompletion(
        {"/usr/bin/reuseport-legacy-kernel", "--kernel", kLegacyKernel, "--", "/etc/init.d/reuseportd", "start"}, &start);
    ASSERT_OK(st);
    ASSERT_TRUE(ExitedWith(*st, 0)) << start;
  }
  std::cout << "[ deb ] broker started by " << (started_by_package ? "the package (invoke-rc.d)" : "/etc/init.d/reuseportd start (invoke-rc.d declined)")
            << "\n";
  RecordProperty("broker_started_by", started_by_package ? "package" : "init script");
  std::string status;
  ASSERT_OK(RunToCompletion({"/etc/init.d/reuseportd", "status"}, &status));
  EXPECT_TRUE(absl::StrContains(status, "serving /run/reuseport/reuseportd.sock")) << status;

  // Three copies of a server that never asks for SO_REUSEPORT, through the
  // installed reuseport-run and its defaults.
  uint16_t port = FreeLoopbackPort();
  ASSERT_NE(port, 0);
  std::vector<MemberProcess> servers;
  for (int i = 1; i <= 3; ++i) {
    MemberOptions m;
    m.process.argv = {"/usr/bin/reuseport-legacy-kernel", "--kernel", kLegacyKernel, "--", "/usr/bin/reuseport-run",
                      "--ports", absl::StrCat(port), "--", TcpMemberPath(), "--no-reuseport", "--port",
                      absl::StrCat(port)};
    m.process.unset_env = {"REUSEPORT_SOCKET", "LD_PRELOAD"};
    m.id = absl::StrCat("s", i);
    m.dir = dir_.path();
    absl::StatusOr<MemberProcess> server = StartMember(std::move(m));
    ASSERT_OK(server);
    EXPECT_FALSE(absl::StrContains(server->process.ReadStderr(), "no broker answers")) << server->process.ReadStderr();
    servers.push_back(std::move(*server));
  }
  absl::Time deadline = absl::Now() + absl::Seconds(15);
  absl::StatusOr<int> members = Members();
  while ((!members.ok() || *members != 3) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
    members = Members();
  }
  ASSERT_OK(members);
  ASSERT_EQ(*members, 3);
  TcpLoadOptions load;
  load.port = port;
  load.connections = 600;
  TcpLoadResult result = RunTcpLoad(load);
  EXPECT_EQ(result.successes, 600) << result.Summary();
  EXPECT_EQ(result.per_member.size(), 3u) << result.Summary();
  std::cout << "[ deb ] " << result.successes << " of 600 served: " << DescribeShares(result.per_member, result.successes)
            << "\n";
  std::string text;
  ASSERT_OK(RunToCompletion({"/usr/bin/reuseportctl", "status"}, &text));
  EXPECT_TRUE(absl::StrContains(text, "3 member(s)")) << text;
  servers.clear();  // SIGKILLed: servers go before their packages do

  // Purge: nothing left.
  s = Dpkg({"--purge", "reuseport"}, &out);
  ASSERT_OK(s);
  ASSERT_TRUE(ExitedWith(*s, 0)) << "dpkg --purge: " << out;
  EXPECT_FALSE(Installed());
  for (const std::string& f : files) EXPECT_FALSE(fs::exists(f)) << f << " left behind";
  for (const char* d : {"/etc/reuseport", "/run/reuseport", "/var/run/reuseport", "/usr/share/reuseport",
                        "/usr/include/reuseport"}) {
    EXPECT_FALSE(fs::exists(d)) << d << " left behind";
  }
  for (const auto& e : fs::directory_iterator("/etc")) {
    if (!absl::StartsWith(e.path().filename().string(), "rc") || !fs::is_directory(e.path())) continue;
    for (const auto& link : fs::directory_iterator(e.path())) {
      EXPECT_FALSE(absl::EndsWith(link.path().filename().string(), "reuseportd")) << link.path() << " left behind";
    }
  }
  deadline = absl::Now() + absl::Seconds(10);
  while (!InstalledBrokers().empty() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_TRUE(InstalledBrokers().empty()) << "a broker still runs after purge";
  std::string state;
  ASSERT_OK(RunToCompletion({"dpkg-query", "-W", "-f=${Status}", "reuseport"}, &state));
  EXPECT_FALSE(absl::StrContains(state, "config-files")) << state;
}

}  // namespace
}  // namespace reuseport::testing
