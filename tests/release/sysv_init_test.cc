// The release's SysV init script, its whole life, against the release's own
// broker: status, start, start again, servers joining, reload (the SIGHUP
// hand-off) while connections stream in with none refused, restart with the
// servers rejoining, force-reload, stop, stop again; try-restart. The script and everything it starts run
// under the release's reuseport-legacy-kernel --kernel 3.2; so do the servers
// (this build's tcp_member, started by the release's reuseport-run with the
// release's shim).
//
// Three environments, as the script meets them:
//   Debian  this machine: start-stop-daemon and LSB's init-functions
//   Bare    a root without either (busybox-like systems)
//   Rhel    a root without either, with a stand-in for RHEL's
//           /etc/rc.d/init.d/functions, and without /run (RHEL 6 has
//           /var/run only): the script, the broker's socket and reuseportctl's
//           default must all be under /var/run/reuseport.
// The last two are chroots in a private mount namespace (root needed).
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "json_value.h"
#include "load_client.h"
#include "member_paths.h"
#include "member_process.h"
#include "orphan_reaper.h"
#include "readiness.h"
#include "release_files.h"
#include "reuseport_fixture.h"
#include "status_macros.h"

namespace reuseport::testing {
namespace {

namespace fs = std::filesystem;

enum class Environment { kDebian, kBare, kRhel };

std::string Name(Environment e) {
  switch (e) {
    case Environment::kDebian: return "Debian";
    case Environment::kBare: return "Bare";
    case Environment::kRhel: return "Rhel";
  }
  return "?";
}

// gtest prints the parameter in test names: "Debian", not its bytes.
void PrintTo(Environment e, std::ostream* os) { *os << Name(e); }

// Enters the constructed root: the host's /usr without start-stop-daemon and
// LSB's functions, /dev, /proc, the host's /tmp (where the release and the
// test's files are, at the same paths). Private mounts: the host sees none.
constexpr char kEnterRoot[] = R"(
set -e
root=$1
shift
mount --bind /usr "$root/usr"
mount -t tmpfs -o mode=0755 tmpfs "$root/usr/sbin"
[ -d "$root/usr/lib/lsb" ] && mount -t tmpfs -o mode=0755 tmpfs "$root/usr/lib/lsb"
for d in bin sbin lib lib64; do
  if [ -d "/$d" ] && [ ! -L "/$d" ]; then mount --bind "/$d" "$root/$d"; fi
done
if [ ! -L /sbin ]; then mount -t tmpfs -o mode=0755 tmpfs "$root/sbin"; fi
if [ ! -L /lib ] && [ -d "$root/lib/lsb" ]; then mount -t tmpfs -o mode=0755 tmpfs "$root/lib/lsb"; fi
mount --rbind /dev "$root/dev"
mount -t proc proc "$root/proc"
mount --bind /tmp "$root/tmp"
exec chroot "$root" "$@"
)";

// Stands in for RHEL's /etc/rc.d/init.d/functions: success and failure print
// as RHEL's do; the other functions RHEL's file defines stop the script with
// status 99, so a script that called one of them unknowingly shows up.
constexpr char kRhelFunctions[] = R"(# stand-in for RHEL's /etc/rc.d/init.d/functions (sysv_init_test)
PATH="/sbin:/usr/sbin:/bin:/usr/bin"
export PATH
umask 022
success() { printf '[  OK  ]'; return 0; }
failure() { printf '[FAILED]'; return 1; }
for f in daemon killproc pidofproc pidfileofproc status action echo_success echo_failure echo_passed \
         echo_warning passed warning checkpid confirm; do
  eval "$f() { echo \"the script called RHEL's $f\" >&2; exit 99; }"
done
)";

struct ScriptResult {
  int wait_status = -1;
  std::string output;
  int code() const { return WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : -1; }
};

class SysvInitTest : public ::testing::TestWithParam<Environment> {
 protected:
  void SetUp() override {
    absl::StatusOr<ReleasePaths> release = FindRelease();
    if (absl::IsNotFound(release.status())) GTEST_SKIP() << release.status().message();
    ASSERT_OK(release);
    if (env() != Environment::kDebian && geteuid() != 0) {
      GTEST_SKIP() << "needs root: the " << Name(env()) << " environment is a chroot in a mount namespace";
    }
    if (env() == Environment::kDebian && access("/sbin/start-stop-daemon", X_OK) != 0) {
      GTEST_SKIP() << "no start-stop-daemon on this machine: not a Debian one";
    }
    absl::StatusOr<UnpackedRelease> unpacked = UnpackedRelease::Unpack(*release);
    ASSERT_OK(unpacked);
    release_.emplace(std::move(*unpacked));
    if (env() != Environment::kDebian) {
      ASSERT_NO_FATAL_FAILURE(BuildRoot());
    }

    // Where the broker's run directory is, seen from here.
    switch (env()) {
      case Environment::kDebian: run_dir_ = dir_.File("run/reuseport"); break;
      case Environment::kBare: run_dir_ = root_ + "/run/reuseport"; break;
      case Environment::kRhel: run_dir_ = root_ + "/var/run/reuseport"; break;
    }
    socket_ = run_dir_ + "/reuseportd.sock";
    pidfile_ = run_dir_ + "/reuseportd.pid";
    WriteDefaults(release_->Policy());
  }

  void TearDown() override {
    // Whatever happened, no broker of ours outlives the test.
    if (release_.has_value() && access(pidfile_.c_str(), F_OK) == 0) Script("stop");
  }

  Environment env() const { return GetParam(); }

  void BuildRoot() {
    root_ = dir_.File("root");
    for (const char* d : {"usr", "dev", "proc", "tmp", "etc", "var"}) fs::create_directories(root_ + "/" + d);
    fs::create_directories(root_ + (env() == Environment::kRhel ? "/var/run" : "/run"));
    for (const char* d : {"bin", "sbin", "lib", "lib64"}) {
      std::string host = std::string("/") + d;
      if (fs::is_symlink(host)) {
        fs::create_directory_symlink(fs::read_symlink(host), root_ + host);
      } else if (fs::is_directory(host)) {
        fs::create_directories(root_ + host);
      }
    }
    for (const char* f : {"/etc/passwd", "/etc/group", "/etc/ld.so.cache"}) {
      if (fs::exists(f)) fs::copy_file(f, root_ + f);
    }
    if (env() == Environment::kRhel) {
      fs::create_directories(root_ + "/etc/rc.d/init.d");
      std::ofstream(root_ + "/etc/rc.d/init.d/functions") << kRhelFunctions;
    }
  }

  // The script's settings file ($REUSEPORTD_DEFAULTS): the unpacked release
  // instead of /usr/local, the broker's stderr in a file. The constructed
  // roots leave the run directory to the script (/run or /var/run).
  void WriteDefaults(const std::string& policy) {
    defaults_ = dir_.File("defaults");
    std::ofstream out(defaults_);
    out << "DAEMON=" << release_->Broker() << "\n"
        << "POLICY=" << policy << "\n"
        << "REUSEPORTD_OPTS=\"--log_level info\"\n"
        << "LOG_FILE=" << dir_.File("broker.log") << "\n";
    if (env() == Environment::kDebian) out << "RUNDIR=" << run_dir_ << "\n";
  }

  // `command` in this test's environment, under the legacy-kernel runner.
  std::vector<std::string> InEnvironment(const std::vector<std::string>& command) const {
    std::vector<std::string> argv;
    if (env() != Environment::kDebian) {
      argv = {"unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", kEnterRoot, "sh", root_};
    }
    argv.insert(argv.end(), {release_->LegacyKernel(), "--kernel", kLegacyKernel, "--"});
    argv.insert(argv.end(), command.begin(), command.end());
    return argv;
  }

  ScriptResult Script(const std::string& action) {
    ScriptResult r;
    absl::StatusOr<int> status = RunToCompletion(InEnvironment({release_->SysvScript(), action}), &r.output,
                                                 {{"REUSEPORTD_DEFAULTS", defaults_}}, absl::Seconds(60));
    if (status.ok()) r.wait_status = *status;
    return r;
  }

  // The pid the pid file names, or 0.
  pid_t PidFromFile() const {
    absl::StatusOr<std::string> text = ReadFile(pidfile_);
    int pid = 0;
    if (!text.ok() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &pid)) return 0;
    return pid;
  }

  // Alive and not a zombie.
  static bool Alive(pid_t pid) {
    absl::StatusOr<std::string> cmdline = ReadFile(absl::StrCat("/proc/", pid, "/cmdline"));
    return cmdline.ok() && !cmdline->empty();
  }

  static bool WaitGone(pid_t pid) {
    absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (Alive(pid)) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return true;
  }

  // The broker's view through the release's reuseportctl: members of all groups.
  absl::StatusOr<int> Members() const {
    std::string out;
    absl::StatusOr<int> s = RunToCompletion({release_->Ctl(), "--socket", socket_, "status", "--json"}, &out);
    if (!s.ok()) return s.status();
    if (!ExitedWith(*s, 0)) return absl::UnavailableError(out);
    absl::StatusOr<ctl::JsonValue> doc = ctl::ParseJson(out);
    if (!doc.ok()) return doc.status();
    int n = 0;
    for (const ctl::JsonValue& g : (*doc)["groups"].array) n += static_cast<int>(g["members"].array.size());
    return n;
  }

  absl::Status WaitForMembers(int want) const {
    absl::Time deadline = absl::Now() + absl::Seconds(15);
    absl::StatusOr<int> n;
    while (absl::Now() < deadline) {
      n = Members();
      if (n.ok() && *n == want) return absl::OkStatus();
      absl::SleepFor(absl::Milliseconds(20));
    }
    return absl::DeadlineExceededError(
        absl::StrCat("wanted ", want, " members; last: ", n.ok() ? absl::StrCat(*n) : n.status().ToString()));
  }

  // A server that never asks for SO_REUSEPORT, run as an operator would:
  // reuseport-run --ports, all of it on the pretend Linux 3.2.
  MemberOptions Server(const std::string& id, uint16_t port) const {
    MemberOptions m;
    m.process.argv = {release_->LegacyKernel(), "--kernel", kLegacyKernel, "--", release_->Run(),
                      "--socket", socket_, "--ports", absl::StrCat(port), "--shim", release_->Shim(), "--",
                      TcpMemberPath(), "--no-reuseport", "--port", absl::StrCat(port)};
    m.id = id;
    m.dir = dir_.path();
    return m;
  }

  std::string BrokerLog() const {
    absl::StatusOr<std::string> log = ReadFile(dir_.File("broker.log"));
    return log.ok() ? *log : "";
  }

  TempDir dir_ = MakeTestDir();
  std::optional<UnpackedRelease> release_;
  std::string root_, run_dir_, socket_, pidfile_, defaults_;
  OrphanReaper reaper_;  // init's part: brokers that exit do not linger as zombies
};

// Load in chunks from a thread until told to stop, so that something happens
// while the load is known to be flowing.
class ChunkedLoad {
 public:
  explicit ChunkedLoad(uint16_t port) : thread_([this, port] { Run(port); }) {}
  ~ChunkedLoad() { Finish(); }

  void WaitForChunks(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return chunks_ >= n; });
  }
  int chunks() {
    std::lock_guard<std::mutex> lock(mu_);
    return chunks_;
  }
  const TcpLoadResult& Finish() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    return total_;
  }

 private:
  void Run(uint16_t port) {
    while (!stop_) {
      TcpLoadOptions options;
      options.port = port;
      options.connections = 200;
      options.concurrency = 8;
      TcpLoadResult r = RunTcpLoad(options);
      std::lock_guard<std::mutex> lock(mu_);
      total_.attempted += r.attempted;
      total_.successes += r.successes;
      total_.refused += r.refused;
      total_.reset += r.reset;
      total_.timeout += r.timeout;
      total_.closed += r.closed;
      total_.bad_reply += r.bad_reply;
      total_.other += r.other;
      for (const auto& [id, n] : r.per_member) total_.per_member[id] += n;
      for (const std::string& e : r.failure_examples) {
        if (total_.failure_examples.size() < 5) total_.failure_examples.push_back(e);
      }
      ++chunks_;
      cv_.notify_all();
    }
  }

  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  int chunks_ = 0;
  TcpLoadResult total_;
  std::thread thread_;
};

std::string Describe(const TcpLoadResult& r) {
  return absl::StrCat(r.successes, " of ", r.attempted, " served; refused ", r.refused, ", reset ", r.reset,
                      ", timeout ", r.timeout, ", closed ", r.closed, ", bad ", r.bad_reply, ", other ", r.other, "; ",
                      DescribeShares(r.per_member, r.successes),
                      r.failure_examples.empty() ? "" : absl::StrCat("; e.g. ", r.failure_examples[0]));
}

TEST_P(SysvInitTest, WholeLifeWithAReloadUnderLoad) {
  const std::string said = Name(env());

  // Not running yet: LSB status 3.
  ScriptResult status = Script("status");
  EXPECT_EQ(status.code(), 3) << status.output;
  EXPECT_TRUE(absl::StrContains(status.output, "reuseportd is not running")) << status.output;

  // start: serving once it returns.
  ScriptResult start = Script("start");
  ASSERT_EQ(start.code(), 0) << start.output << "\nbroker log:\n" << BrokerLog();
  switch (env()) {
    case Environment::kDebian:
      EXPECT_TRUE(absl::StrContains(start.output, "Starting SO_REUSEPORT broker: reuseportd")) << start.output;
      break;
    case Environment::kBare:
      EXPECT_EQ(start.output, "Starting reuseportd: done.\n");
      break;
    case Environment::kRhel:
      EXPECT_EQ(start.output, "Starting reuseportd: [  OK  ]\n");
      break;
  }
  pid_t first = PidFromFile();
  ASSERT_GT(first, 0) << "no pid file at " << pidfile_;
  EXPECT_TRUE(Alive(first));
  struct stat st {};
  EXPECT_EQ(stat(socket_.c_str(), &st), 0) << socket_;
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  status = Script("status");
  EXPECT_EQ(status.code(), 0) << status.output;
  EXPECT_TRUE(absl::StrContains(status.output, absl::StrCat("running (pid ", first, ")"))) << status.output;
  // The broker runs on the pretend 3.2: no seccomp filter for it there.
  EXPECT_TRUE(absl::StrContains(BrokerLog(), "need Linux 3.5")) << BrokerLog();

  // start again: nothing to do, and says so.
  ScriptResult again = Script("start");
  EXPECT_EQ(again.code(), 0) << again.output;
  EXPECT_TRUE(absl::StrContains(again.output, absl::StrCat("already running, pid ", first))) << again.output;
  EXPECT_EQ(PidFromFile(), first);

  if (env() == Environment::kRhel) {
    // Without /run, everyone's default is /var/run/reuseport: reuseportctl
    // in that root finds the broker with no --socket.
    std::string out;
    absl::StatusOr<int> ctl = RunToCompletion(InEnvironment({release_->Ctl(), "status"}), &out);
    ASSERT_OK(ctl);
    EXPECT_TRUE(ExitedWith(*ctl, 0)) << out;
    EXPECT_TRUE(absl::StartsWith(out, "reuseportd: up")) << out;
  }

  // Four servers on one port.
  uint16_t port = FreeLoopbackPort();
  ASSERT_NE(port, 0);
  std::vector<MemberProcess> servers;
  for (int i = 1; i <= 4; ++i) {
    absl::StatusOr<MemberProcess> s = StartMember(Server(absl::StrCat("s", i), port));
    ASSERT_OK(s);
    servers.push_back(std::move(*s));
  }
  ASSERT_OK(WaitForMembers(4));

  // reload while connections stream in: none refused.
  ChunkedLoad load(port);
  load.WaitForChunks(1);
  absl::Time reload_start = absl::Now();
  ScriptResult reload = Script("reload");
  absl::Duration reload_took = absl::Now() - reload_start;
  int chunks_at_reload = load.chunks();
  load.WaitForChunks(chunks_at_reload + 2);
  const TcpLoadResult& during = load.Finish();
  ASSERT_EQ(reload.code(), 0) << reload.output << "\nbroker log:\n" << BrokerLog();
  EXPECT_EQ(during.refused, 0) << Describe(during);
  EXPECT_EQ(during.failures(), 0) << Describe(during);
  EXPECT_GE(during.successes, 600);
  pid_t second = PidFromFile();
  EXPECT_NE(second, first) << "the pid file still names the broker that was replaced";
  EXPECT_TRUE(Alive(second));
  EXPECT_TRUE(WaitGone(first)) << "the replaced broker " << first << " is still running";
  status = Script("status");
  EXPECT_TRUE(absl::StrContains(status.output, absl::StrCat("running (pid ", second, ")"))) << status.output;
  EXPECT_OK(WaitForMembers(4)) << "members stay through a hand-off";
  std::cout << "[ " << said << " ] reload under load in " << absl::FormatDuration(reload_took) << ": "
            << Describe(during) << "\n";
  RecordProperty("reload_under_load", Describe(during));

  // restart: a new broker; the servers rejoin it and serve.
  ScriptResult restart = Script("restart");
  ASSERT_EQ(restart.code(), 0) << restart.output << "\nbroker log:\n" << BrokerLog();
  pid_t third = PidFromFile();
  EXPECT_GT(third, 0);
  EXPECT_NE(third, second);
  EXPECT_FALSE(Alive(second));
  ASSERT_OK(WaitForMembers(4)) << "servers rejoin a restarted broker";
  TcpLoadOptions after;
  after.port = port;
  after.connections = 400;
  TcpLoadResult served = RunTcpLoad(after);
  EXPECT_EQ(served.successes, 400) << Describe(served);
  EXPECT_EQ(served.per_member.size(), 4u) << Describe(served);
  std::cout << "[ " << said << " ] after restart: " << Describe(served) << "\n";

  // force-reload: the same hand-off as reload (LSB's name for it).
  ScriptResult force = Script("force-reload");
  ASSERT_EQ(force.code(), 0) << force.output << "\nbroker log:\n" << BrokerLog();
  pid_t fourth = PidFromFile();
  EXPECT_NE(fourth, third);
  EXPECT_TRUE(WaitGone(third));
  EXPECT_OK(WaitForMembers(4));

  // stop: gone, and so are its pid file and socket.
  ScriptResult stop = Script("stop");
  EXPECT_EQ(stop.code(), 0) << stop.output;
  EXPECT_TRUE(WaitGone(fourth));
  EXPECT_NE(access(pidfile_.c_str(), F_OK), 0) << "pid file left";
  EXPECT_NE(access(socket_.c_str(), F_OK), 0) << "socket left";
  status = Script("status");
  EXPECT_EQ(status.code(), 3) << status.output;
  ScriptResult stop_again = Script("stop");
  EXPECT_EQ(stop_again.code(), 0) << stop_again.output;
  EXPECT_TRUE(absl::StrContains(stop_again.output, "not running")) << stop_again.output;

  // The servers outlived every broker: they keep their sockets while none runs.
  for (MemberProcess& s : servers) EXPECT_TRUE(s.process.Running()) << s.id;
}

TEST_P(SysvInitTest, InvalidPolicyIsRefusedAtStartAndReload) {
  std::string bad = dir_.File("bad-policy.conf");
  std::ofstream(bad) << "allow uid=no-such-user-anywhere port=80\n";
  WriteDefaults(bad);
  ScriptResult start = Script("start");
  EXPECT_EQ(start.code(), 6) << start.output;
  EXPECT_TRUE(absl::StrContains(start.output, "invalid policy")) << start.output;
  EXPECT_TRUE(absl::StrContains(start.output, "no such user 'no-such-user-anywhere'")) << start.output;
  EXPECT_EQ(Script("status").code(), 3);

  // Started with a good policy, a reload with a bad one keeps the old broker.
  WriteDefaults(release_->Policy());
  ASSERT_EQ(Script("start").code(), 0) << BrokerLog();
  pid_t pid = PidFromFile();
  WriteDefaults(bad);
  ScriptResult reload = Script("reload");
  EXPECT_EQ(reload.code(), 6) << reload.output;
  EXPECT_EQ(PidFromFile(), pid);
  EXPECT_TRUE(Alive(pid));
  WriteDefaults(release_->Policy());
  EXPECT_EQ(Script("stop").code(), 0);
  EXPECT_TRUE(WaitGone(pid));
}

TEST_P(SysvInitTest, TryRestartRestartsOnlyARunningBroker) {
  ScriptResult idle = Script("try-restart");
  EXPECT_EQ(idle.code(), 0) << idle.output;
  EXPECT_EQ(Script("status").code(), 3) << "try-restart started a broker that was not running";
  ASSERT_EQ(Script("start").code(), 0) << BrokerLog();
  pid_t before = PidFromFile();
  ScriptResult restarted = Script("condrestart");  // RHEL's name for it
  EXPECT_EQ(restarted.code(), 0) << restarted.output;
  pid_t after = PidFromFile();
  EXPECT_GT(after, 0);
  EXPECT_NE(after, before);
  EXPECT_TRUE(WaitGone(before));
  EXPECT_EQ(Script("stop").code(), 0);
  EXPECT_TRUE(WaitGone(after));
}

TEST_P(SysvInitTest, UnknownActionIsAUsageError) {
  ScriptResult r = Script("frobnicate");
  EXPECT_EQ(r.code(), 2) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "Usage:")) << r.output;
}

INSTANTIATE_TEST_SUITE_P(Environments, SysvInitTest,
                         ::testing::Values(Environment::kDebian, Environment::kBare, Environment::kRhel),
                         [](const ::testing::TestParamInfo<Environment>& param_info) { return Name(param_info.param); });

}  // namespace
}  // namespace reuseport::testing
