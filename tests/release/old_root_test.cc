// The release on a real old userland (opt-in): the root file system of an old
// distribution from REUSEPORT_TEST_OLDROOT (Debian 7 "wheezy", eglibc 2.13,
// perl 5.14, is what this was written against) and, for one test, glibc
// 2.12's libraries from REUSEPORT_TEST_GLIBC212 (a directory holding its
// ld-linux-x86-64.so.2, libc.so.6, libdl.so.2, libpthread.so.0, libm.so.6).
// DEVELOPERS.md says where to get both. Without them the tests skip, saying so.
//
// Everything runs inside that root (chroot in a private mount namespace, over
// an overlay so the root itself is never written), under the release's
// reuseport-legacy-kernel --kernel 3.2:
//
// - the release's broker and N copies of the distribution's own unmodified
//   perl server (IO::Socket::INET, which never asks for SO_REUSEPORT) sharing
//   one port through reuseport-run --ports; the spread is reported, and each
//   server reports the C library it runs on and that the shim is loaded;
// - the same with perl run by glibc 2.12.2's loader and libraries (RHEL 6's
//   C library);
// - the .deb installed with the root's own dpkg, the broker run by the
//   installed SysV script with the root's start-stop-daemon and LSB functions
//   (reload under load included), then purged.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "load_client.h"
#include "orphan_reaper.h"
#include "readiness.h"
#include "release_files.h"
#include "reuseport_fixture.h"
#include "status_macros.h"
#include "subprocess.h"

namespace reuseport::testing {
namespace {

namespace fs = std::filesystem;

// Mounts an overlay of the old root (written changes go to the test's own
// directory), /dev, /proc, the host's /tmp (where the release and the test's
// files are, at the same paths) and glibc 2.12's libraries at /glibc-2.12;
// then becomes, inside the root, a perl process that holds the namespace
// until it is killed. Commands join it with nsenter.
constexpr char kEnterOldRoot[] = R"(
set -e
lower=$1 work=$2 glibc=$3
mkdir -p "$work/upper" "$work/work" "$work/root"
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$work/upper,workdir=$work/work" "$work/root"
root=$work/root
mkdir -p "$root/dev" "$root/proc" "$root/tmp" "$root/run" "$root/glibc-2.12"
mount --rbind /dev "$root/dev"
mount -t proc proc "$root/proc"
mount --bind /tmp "$root/tmp"
[ -n "$glibc" ] && mount --bind "$glibc" "$root/glibc-2.12"
exec chroot "$root" /usr/bin/perl -e '
  open(my $f, ">", "$ARGV[0].tmp") or die; close $f; rename("$ARGV[0].tmp", $ARGV[0]);
  sleep 3600 while 1' "$work/ready"
)";

// The unmodified server: IO::Socket::INET with SO_REUSEADDR only, answering
// the test clients' "HELLO <token>" with "<id> <token>". It reports the
// libraries it runs with (the C library, the shim) from its own maps.
constexpr char kPerlServer[] = R"(use strict;
use IO::Socket::INET;
my ($port, $id, $dir) = @ARGV;
my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port, Proto => 'tcp',
                              Listen => 128, ReuseAddr => 1) or die "listen on $port: $!\n";
open(my $maps, '<', '/proc/self/maps') or die "maps: $!\n";
my %libs;
while (<$maps>) { $libs{$1} = 1 if m{\s(/\S*(?:/libc[-.][^/]*|/libreuseport\.so))$} }
close $maps;
open(my $l, '>', "$dir/$id.libs.tmp") or die; print $l join("\n", sort keys %libs), "\n"; close $l;
rename("$dir/$id.libs.tmp", "$dir/$id.libs") or die;
open(my $r, '>', "$dir/$id.ready.tmp") or die; print $r "$port\n"; close $r;
rename("$dir/$id.ready.tmp", "$dir/$id.ready") or die;
$SIG{TERM} = sub { exit 0 };
while (1) {
  my $c = $s->accept or next;
  my $line = <$c>;
  print $c "$id $1\n" if defined $line && $line =~ /^HELLO (\S+)/;
  close $c;
}
)";

std::string Env(const char* name) {
  const char* v = getenv(name);
  return v != nullptr ? v : "";
}

// The old root, entered: commands run inside it (nsenter into the mount
// namespace and the root). Not a PID namespace of its own: the broker must see
// the servers' processes, and nsenter --pid would make the test process the
// parent of processes inside one, which it could not reap in time.
class OldRootSession {
 public:
  static absl::StatusOr<std::unique_ptr<OldRootSession>> Start(const std::string& lower, const std::string& glibc,
                                                               const std::string& work) {
    auto s = std::unique_ptr<OldRootSession>(new OldRootSession());
    std::error_code ec;
    fs::create_directories(work, ec);
    if (ec) return absl::InternalError(absl::StrCat("mkdir ", work, ": ", ec.message()));
    SubprocessOptions o;
    o.argv = {"unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", kEnterOldRoot, "sh", lower, work,
              glibc};
    o.stdout_path = work + "/session.log";
    o.stderr_path = work + "/session.log";
    absl::StatusOr<Subprocess> p = Subprocess::Start(o);
    if (!p.ok()) return p.status();
    s->holder_.emplace(std::move(*p));
    if (absl::Status ready = WaitForFile(work + "/ready", absl::Seconds(30), &*s->holder_); !ready.ok()) return ready;
    return s;
  }

  ~OldRootSession() {
    if (holder_.has_value()) {
      (void)holder_->Signal(SIGKILL);
      (void)holder_->Wait(absl::Seconds(10));
    }
  }

  std::vector<std::string> Inside(const std::vector<std::string>& command) const {
    std::vector<std::string> argv = {"nsenter", "--target", absl::StrCat(holder_->pid()), "--mount", "--root",
                                     "--wd"};
    argv.insert(argv.end(), command.begin(), command.end());
    return argv;
  }

  // Runs to completion inside; the raw wait status, output in *out.
  absl::StatusOr<int> Run(const std::vector<std::string>& command, std::string* out,
                          absl::Duration timeout = absl::Seconds(120)) const {
    return RunToCompletion(Inside(command), out, {{"PATH", "/usr/sbin:/usr/bin:/sbin:/bin"}, {"LANG", "C"}}, timeout);
  }

  absl::StatusOr<Subprocess> Spawn(const std::vector<std::string>& command, const std::string& log) const {
    SubprocessOptions o;
    o.argv = Inside(command);
    o.env = {{"PATH", "/usr/sbin:/usr/bin:/sbin:/bin"}, {"LANG", "C"}};
    o.unset_env = {"LD_PRELOAD", "REUSEPORT_SOCKET", "REUSEPORT_MODE", "REUSEPORT_PORTS"};
    o.stdout_path = log;
    o.stderr_path = log;
    return Subprocess::Start(o);
  }

 private:
  OldRootSession() = default;
  std::optional<Subprocess> holder_;  // unshare, exec'd into chroot and the perl holder: one pid
};

class OldRootTest : public ::testing::Test {
 protected:
  void SetUp() override {
    old_root_ = Env("REUSEPORT_TEST_OLDROOT");
    if (old_root_.empty()) {
      GTEST_SKIP() << "set REUSEPORT_TEST_OLDROOT to an old distribution's root file system (DEVELOPERS.md, "
                      "\"Old root filesystems\")";
    }
    if (!fs::exists(old_root_ + "/usr/bin/perl")) GTEST_SKIP() << old_root_ << " has no /usr/bin/perl";
    if (geteuid() != 0) GTEST_SKIP() << "needs root: chroot, mount and PID namespaces";
    absl::StatusOr<ReleasePaths> release = FindRelease();
    if (absl::IsNotFound(release.status())) GTEST_SKIP() << release.status().message();
    ASSERT_OK(release);
    release_paths_ = *release;
    absl::StatusOr<UnpackedRelease> unpacked = UnpackedRelease::Unpack(*release);
    ASSERT_OK(unpacked);
    release_.emplace(std::move(*unpacked));
    std::ofstream(dir_.File("server.pl")) << kPerlServer;
  }

  absl::Status Enter(const std::string& glibc = "") {
    absl::StatusOr<std::unique_ptr<OldRootSession>> s = OldRootSession::Start(old_root_, glibc, dir_.File("session"));
    if (!s.ok()) {
      absl::StatusOr<std::string> log = ReadFile(dir_.File("session/session.log"));
      return absl::Status(s.status().code(), absl::StrCat(s.status().message(), "\n", log.ok() ? *log : ""));
    }
    session_ = std::move(*s);
    return absl::OkStatus();
  }

  // N perl servers on one port with the release's broker, everything inside
  // the root on the pretend 3.2; returns the load's result. `perl` is how to
  // run perl there.
  void ServeWithPerl(const std::vector<std::string>& perl, const std::string& expected_libc, int servers) {
    const std::vector<std::string> legacy = {release_->LegacyKernel(), "--kernel", kLegacyKernel, "--"};
    std::string socket = dir_.File("rp.sock");
    std::vector<std::string> broker = legacy;
    broker.insert(broker.end(), {release_->Broker(), "--socket", socket, "--pidfile", dir_.File("broker.pid"),
                                 "--log_level", "info"});
    absl::StatusOr<Subprocess> b = session_->Spawn(broker, dir_.File("broker.log"));
    ASSERT_OK(b);
    ASSERT_OK(WaitForFile(dir_.File("broker.pid"), absl::Seconds(20), &*b));

    uint16_t port = FreeLoopbackPort();
    ASSERT_NE(port, 0);
    std::vector<Subprocess> running;
    for (int i = 1; i <= servers; ++i) {
      std::string id = absl::StrCat("perl", i);
      std::vector<std::string> argv = legacy;
      argv.insert(argv.end(), {release_->Run(), "--socket", socket, "--ports", absl::StrCat(port), "--"});
      argv.insert(argv.end(), perl.begin(), perl.end());
      argv.insert(argv.end(), {dir_.File("server.pl"), absl::StrCat(port), id, dir_.path()});
      absl::StatusOr<Subprocess> s = session_->Spawn(argv, dir_.File(id + ".log"));
      ASSERT_OK(s);
      ASSERT_OK(WaitForFile(dir_.File(id + ".ready"), absl::Seconds(30), &*s)) << ReadFile(dir_.File(id + ".log")).value_or("");
      running.push_back(std::move(*s));
      absl::StatusOr<std::string> libs = ReadFile(dir_.File(id + ".libs"));
      ASSERT_OK(libs);
      EXPECT_TRUE(absl::StrContains(*libs, expected_libc)) << id << " runs with:\n" << *libs;
      EXPECT_TRUE(absl::StrContains(*libs, release_->Shim())) << id << " does not run with the release's shim:\n"
                                                              << *libs;
      if (i == 1) std::cout << "[ old root ] " << id << " runs with: " << absl::StrJoin(absl::StrSplit(*libs, '\n', absl::SkipEmpty()), ", ") << "\n";
    }

    TcpLoadOptions load;
    load.port = port;
    load.connections = 2000;
    load.concurrency = 16;
    TcpLoadResult result = RunTcpLoad(load);
    EXPECT_EQ(result.successes, 2000) << result.Summary();
    EXPECT_EQ(result.per_member.size(), static_cast<size_t>(servers)) << result.Summary();
    std::string spread = DescribeShares(result.per_member, result.successes);
    std::cout << "[ old root ] " << result.successes << " of 2000 connections served in "
              << absl::FormatDuration(result.elapsed) << ": " << spread << "\n";
    RecordProperty("spread", spread);

    std::string status;
    ASSERT_OK(RunToCompletion({release_->Ctl(), "--socket", socket, "status"}, &status));
    EXPECT_TRUE(absl::StrContains(status, absl::StrCat(servers, " member(s)"))) << status;
    std::cout << status;
    absl::StatusOr<std::string> log = ReadFile(dir_.File("broker.log"));
    EXPECT_TRUE(log.ok() && absl::StrContains(*log, "need Linux 3.5")) << "not on the pretend 3.2?\n" << log.value_or("");
  }

  void TearDown() override {
    // A broker the installed init script started must not outlive the test.
    if (deb_installed_ && session_ != nullptr) {
      std::string ignored;
      (void)session_->Run({"/etc/init.d/reuseportd", "stop"}, &ignored);
    }
  }

  bool deb_installed_ = false;
  std::string old_root_;
  ReleasePaths release_paths_;
  std::optional<UnpackedRelease> release_;
  TempDir dir_ = MakeTestDir();
  OrphanReaper reaper_;  // brokers the init script starts become our orphans
  std::unique_ptr<OldRootSession> session_;
};

TEST_F(OldRootTest, PerlServersOfTheOldRootShareAPort) {
  ASSERT_OK(Enter());
  std::string version;
  ASSERT_OK(session_->Run({"/usr/bin/ldd", "--version"}, &version));
  std::cout << "[ old root ] " << version.substr(0, version.find('\n')) << "\n";
  ServeWithPerl({"/usr/bin/perl"}, "/lib/x86_64-linux-gnu/libc-", 4);
}

TEST_F(OldRootTest, PerlServersOnGlibc212ShareAPort) {
  std::string glibc = Env("REUSEPORT_TEST_GLIBC212");
  if (glibc.empty()) {
    GTEST_SKIP() << "set REUSEPORT_TEST_GLIBC212 to a directory with glibc 2.12's ld-linux-x86-64.so.2, "
                    "libc.so.6, libdl.so.2, libpthread.so.0 and libm.so.6 (DEVELOPERS.md)";
  }
  for (const char* lib : {"ld-linux-x86-64.so.2", "libc.so.6", "libdl.so.2", "libpthread.so.0", "libm.so.6"}) {
    if (!fs::exists(glibc + "/" + lib)) GTEST_SKIP() << glibc << " has no " << lib;
  }
  if (access((glibc + "/ld-linux-x86-64.so.2").c_str(), X_OK) != 0) {
    GTEST_SKIP() << glibc << "/ld-linux-x86-64.so.2 is not executable (git keeps no mode bit for it: chmod +x)";
  }
  ASSERT_OK(Enter(glibc));
  // glibc 2.12's loader runs the root's perl with 2.12's libraries (the
  // root's own libcrypt and libperl, which need nothing newer), preloading the
  // shim from LD_PRELOAD as reuseport-run set it for the shell.
  std::vector<std::string> perl = {
      "/bin/sh", "-c",
      "exec /glibc-2.12/ld-linux-x86-64.so.2 --library-path "
      "/glibc-2.12:/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu:/usr/lib /usr/bin/perl \"$@\"",
      "perl"};
  std::string version;
  ASSERT_OK(session_->Run({"/bin/sh", "-c", "/glibc-2.12/libc.so.6 | head -n 1"}, &version));
  std::cout << "[ old root ] " << version;
  ServeWithPerl(perl, "/glibc-2.12/libc.so.6", 4);
}

TEST_F(OldRootTest, DebWithTheRootsOwnDpkgAndInitScript) {
  ASSERT_OK(Enter());
  std::string out;
  // A root file system kept in git has lost its empty directories, dpkg's
  // among them (in the overlay only: the root itself is not written).
  ASSERT_OK(session_->Run({"mkdir", "-p", "/var/lib/dpkg/updates", "/var/lib/dpkg/triggers", "/var/lib/dpkg/info",
                           "/var/lib/dpkg/alternatives", "/var/log"},
                          &out));
  // --force-depends only where the root's package database does not list the
  // C library its files hold (a bootstrap tree that registered only dpkg).
  // The root sees the host's /tmp only.
  std::string deb = dir_.File(fs::path(release_paths_.deb).filename().string());
  fs::copy_file(release_paths_.deb, deb);
  std::vector<std::string> install = {"dpkg", "-i", deb};
  std::string libc6;
  absl::StatusOr<int> known = session_->Run({"dpkg-query", "-W", "-f=${Status}", "libc6"}, &libc6);
  if (!known.ok() || !ExitedWith(*known, 0) || !absl::StrContains(libc6, "install ok installed")) {
    install.insert(install.begin() + 1, "--force-depends");
    std::cout << "[ old root ] its dpkg database does not list libc6: installing with --force-depends\n";
  }
  absl::StatusOr<int> s = session_->Run(install, &out);
  ASSERT_OK(s);
  ASSERT_TRUE(ExitedWith(*s, 0)) << "the root's dpkg refused the .deb:\n" << out;
  std::string dpkg_version;
  ASSERT_OK(session_->Run({"/bin/sh", "-c", "dpkg-query -W -f='${Version}' dpkg 2>/dev/null"}, &dpkg_version));
  deb_installed_ = true;
  std::cout << "[ old root ] dpkg " << dpkg_version << " installed it:\n" << out;
  std::string files;
  ASSERT_OK(session_->Run({"dpkg", "-L", "reuseport"}, &files));

  const std::vector<std::string> legacy = {"/usr/bin/reuseport-legacy-kernel", "--kernel", kLegacyKernel, "--"};
  auto script = [&](const std::string& action, std::string* output) {
    std::vector<std::string> argv = legacy;
    argv.insert(argv.end(), {"/etc/init.d/reuseportd", action});
    absl::StatusOr<int> r = session_->Run(argv, output);
    return r.ok() ? *r : -1;
  };
  // The package's postinst started the broker through the root's invoke-rc.d
  // (on this machine's kernel). Settings as an operator writes them, then a
  // restart, on the pretend 3.2 from here on.
  std::string defaults = absl::StrCat("REUSEPORTD_OPTS=\"--log_level info\"\nLOG_FILE=", dir_.File("broker.log"), "\n");
  ASSERT_OK(session_->Run({"/bin/sh", "-c", "printf '%s' \"$1\" >/etc/default/reuseportd", "sh", defaults}, &out));
  std::string stopped_first, started;
  EXPECT_TRUE(ExitedWith(script("stop", &stopped_first), 0)) << stopped_first;
  int start = script("start", &started);
  ASSERT_TRUE(ExitedWith(start, 0)) << started;
  std::cout << "[ old root ] " << stopped_first << "[ old root ] " << started;
  absl::StatusOr<std::string> broker_log = ReadFile(dir_.File("broker.log"));
  EXPECT_TRUE(broker_log.ok() && absl::StrContains(*broker_log, "need Linux 3.5")) << broker_log.value_or("");
  std::string status;
  EXPECT_TRUE(ExitedWith(script("status", &status), 0)) << status;

  // Three servers through the installed reuseport-run and its defaults.
  uint16_t port = FreeLoopbackPort();
  ASSERT_NE(port, 0);
  std::vector<Subprocess> running;
  for (int i = 1; i <= 3; ++i) {
    std::string id = absl::StrCat("perl", i);
    std::vector<std::string> argv = legacy;
    argv.insert(argv.end(), {"/usr/bin/reuseport-run", "--ports", absl::StrCat(port), "--", "/usr/bin/perl",
                             dir_.File("server.pl"), absl::StrCat(port), id, dir_.path()});
    absl::StatusOr<Subprocess> p = session_->Spawn(argv, dir_.File(id + ".log"));
    ASSERT_OK(p);
    ASSERT_OK(WaitForFile(dir_.File(id + ".ready"), absl::Seconds(30), &*p)) << ReadFile(dir_.File(id + ".log")).value_or("");
    running.push_back(std::move(*p));
  }

  // Reload under load, through the root's start-stop-daemon and LSB functions.
  TcpLoadResult during;
  std::atomic<bool> stop{false};
  std::atomic<int> chunks{0};
  std::thread loader([&] {
    while (!stop) {
      TcpLoadOptions o;
      o.port = port;
      o.connections = 200;
      o.concurrency = 8;
      TcpLoadResult r = RunTcpLoad(o);
      during.attempted += r.attempted;
      during.successes += r.successes;
      during.refused += r.refused;
      during.other += r.failures() - r.refused;
      for (const auto& [id, n] : r.per_member) during.per_member[id] += n;
      ++chunks;
    }
  });
  while (chunks < 1) absl::SleepFor(absl::Milliseconds(5));
  std::string reloaded;
  int reload = script("reload", &reloaded);
  int at = chunks;
  while (chunks < at + 2) absl::SleepFor(absl::Milliseconds(5));
  stop = true;
  loader.join();
  EXPECT_TRUE(ExitedWith(reload, 0)) << reloaded;
  EXPECT_EQ(during.refused, 0);
  EXPECT_EQ(during.successes, during.attempted);
  std::cout << "[ old root ] reload under load: " << during.successes << " of " << during.attempted
            << " served, refused " << during.refused << ": " << DescribeShares(during.per_member, during.successes)
            << "\n";

  std::string stopped;
  EXPECT_TRUE(ExitedWith(script("stop", &stopped), 0)) << stopped;
  std::cout << "[ old root ] " << stopped;
  EXPECT_TRUE(ExitedWith(script("status", &status), 3)) << status;
  running.clear();

  // Purge with the root's dpkg: nothing of the package left in the root.
  s = session_->Run({"dpkg", "--purge", "reuseport"}, &out);
  deb_installed_ = false;
  ASSERT_OK(s);
  EXPECT_TRUE(ExitedWith(*s, 0)) << out;
  std::string left;
  std::vector<std::string> listed = absl::StrSplit(files, '\n', absl::SkipEmpty());
  std::vector<std::string> check = {"/bin/sh", "-c",
                                    "for f in \"$@\"; do if [ -f \"$f\" ] || [ -L \"$f\" ]; then echo \"$f\"; fi; done; "
                                    "for f in /etc/reuseport /run/reuseport /usr/share/reuseport /etc/rc?.d/*reuseportd; do "
                                    "[ -e \"$f\" ] && echo \"$f\"; done; true",
                                    "sh"};
  check.insert(check.end(), listed.begin(), listed.end());
  ASSERT_OK(session_->Run(check, &left));
  EXPECT_EQ(left, "") << "left behind after purge";
}

}  // namespace
}  // namespace reuseport::testing
