#include "subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "fd_count.h"
#include "gtest/gtest.h"
#include "readiness.h"
#include "status_macros.h"
#include "temp_dir.h"

namespace reuseport::testing {
namespace {

constexpr absl::Duration kWait = absl::Seconds(10);

SubprocessOptions Shell(const std::string& script) {
  SubprocessOptions options;
  options.argv = {"/bin/sh", "-c", script};
  return options;
}

TEST(SubprocessTest, ReportsExitStatusAndOutput) {
  ASSERT_OK_AND_ASSIGN(Subprocess child, Subprocess::Start(Shell("echo out; echo err >&2; exit 3")));
  ASSERT_OK_AND_ASSIGN(int status, child.Wait(kWait));
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 3);
  EXPECT_EQ(DescribeWaitStatus(status), "exited with status 3");
  EXPECT_EQ(child.ReadStdout(), "out\n");
  EXPECT_EQ(child.ReadStderr(), "err\n");
  EXPECT_FALSE(child.Running());
  // Once reaped, the same status again at once.
  ASSERT_OK_AND_ASSIGN(int again, child.Wait(absl::ZeroDuration()));
  EXPECT_EQ(again, status);
}

TEST(SubprocessTest, ExecFailureIsAnErrorNotAnExitStatus) {
  SubprocessOptions options;
  options.argv = {"/nonexistent/program"};
  absl::StatusOr<Subprocess> child = Subprocess::Start(options);
  ASSERT_FALSE(child.ok());
  EXPECT_NE(child.status().message().find("exec"), std::string::npos) << child.status();
  EXPECT_NE(child.status().message().find("No such file"), std::string::npos) << child.status();

  options.argv = {"no-such-program-in-path-xyz"};
  EXPECT_EQ(Subprocess::Start(options).status().code(), absl::StatusCode::kNotFound);
}

TEST(SubprocessTest, BadWorkingDirIsAnError) {
  SubprocessOptions options = Shell("true");
  options.working_dir = "/nonexistent-dir";
  absl::StatusOr<Subprocess> child = Subprocess::Start(options);
  ASSERT_FALSE(child.ok());
  EXPECT_NE(child.status().message().find("chdir"), std::string::npos) << child.status();
}

TEST(SubprocessTest, EnvironmentIsAddedOverriddenAndRemoved) {
  setenv("REUSEPORT_SUBPROCESS_TEST_KEEP", "kept", 1);
  setenv("REUSEPORT_SUBPROCESS_TEST_OVERRIDE", "old", 1);
  setenv("REUSEPORT_SUBPROCESS_TEST_REMOVE", "present", 1);
  SubprocessOptions options = Shell(
      "echo \"$REUSEPORT_SUBPROCESS_TEST_KEEP $REUSEPORT_SUBPROCESS_TEST_OVERRIDE "
      "$REUSEPORT_SUBPROCESS_TEST_NEW ${REUSEPORT_SUBPROCESS_TEST_REMOVE-unset}\"");
  options.env = {{"REUSEPORT_SUBPROCESS_TEST_OVERRIDE", "new"}, {"REUSEPORT_SUBPROCESS_TEST_NEW", "added"}};
  options.unset_env = {"REUSEPORT_SUBPROCESS_TEST_REMOVE"};
  ASSERT_OK_AND_ASSIGN(Subprocess child, Subprocess::Start(options));
  ASSERT_OK(child.Wait(kWait));
  EXPECT_EQ(child.ReadStdout(), "kept new added unset\n");
}

TEST(SubprocessTest, WorkingDirAndSharedOutputFile) {
  ASSERT_OK_AND_ASSIGN(TempDir dir, TempDir::Create());
  SubprocessOptions options = Shell("pwd; echo err >&2");
  options.working_dir = dir.path();
  options.stdout_path = options.stderr_path = dir.File("output");
  ASSERT_OK_AND_ASSIGN(Subprocess child, Subprocess::Start(options));
  ASSERT_OK(child.Wait(kWait));
  EXPECT_EQ(*ReadFile(dir.File("output")), absl::StrCat(dir.path(), "\nerr\n"));
}

TEST(SubprocessTest, InheritedFdArrivesUnderItsNewNumberAndNothingElseLeaks) {
  int pipe_fds[2];
  ASSERT_EQ(pipe2(pipe_fds, O_CLOEXEC), 0);
  int stray = open("/dev/null", O_RDONLY);  // not close-on-exec: must still not leak
  ASSERT_GE(stray, 0);
  SubprocessOptions options = Shell("echo via-fd-3 >&3; ls /proc/self/fd | sort -n | tr '\\n' ' '");
  options.inherited_fds = {{pipe_fds[1], 3}};
  ASSERT_OK_AND_ASSIGN(Subprocess child, Subprocess::Start(options));
  close(pipe_fds[1]);
  close(stray);
  char buf[64] = {};
  ASSERT_EQ(read(pipe_fds[0], buf, sizeof(buf) - 1), 9);
  EXPECT_STREQ(buf, "via-fd-3\n");
  close(pipe_fds[0]);
  ASSERT_OK(child.Wait(kWait));
  // 0-3, plus the fd ls uses to read the directory.
  EXPECT_EQ(child.ReadStdout().substr(0, 8), "0 1 2 3 ") << child.ReadStdout();
  EXPECT_EQ(child.ReadStdout().size(), std::string("0 1 2 3 4 ").size()) << child.ReadStdout();
}

TEST(SubprocessTest, InheritedFdsMayTakeEachOthersNumbers) {
  // The child wants a's fd as b's number and the reverse: the swap must not
  // clobber either.
  int a[2], b[2];
  ASSERT_EQ(pipe2(a, O_CLOEXEC), 0);
  ASSERT_EQ(pipe2(b, O_CLOEXEC), 0);
  if (a[1] > 9 || b[1] > 9) GTEST_SKIP() << "sh only redirects to fds 0-9";
  SubprocessOptions options = Shell(absl::StrCat("echo A >&", b[1], "; echo B >&", a[1]));
  options.inherited_fds = {{a[1], b[1]}, {b[1], a[1]}};
  ASSERT_OK_AND_ASSIGN(Subprocess child, Subprocess::Start(options));
  close(a[1]);
  close(b[1]);
  ASSERT_OK(child.Wait(kWait));
  char buf[8] = {};
  ASSERT_EQ(read(a[0], buf, sizeof(buf)), 2);
  EXPECT_EQ(buf[0], 'A');
  ASSERT_EQ(read(b[0], buf, sizeof(buf)), 2);
  EXPECT_EQ(buf[0], 'B');
  close(a[0]);
  close(b[0]);
}

TEST(SubprocessTest, DropsToAnotherUser) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to change uid";
  SubprocessOptions options = Shell("id -u; id -g; id -G");
  options.uid = 65534;
  options.gid = 65534;
  ASSERT_OK_AND_ASSIGN(Subprocess child, Subprocess::Start(options));
  ASSERT_OK(child.Wait(kWait));
  EXPECT_EQ(child.ReadStdout(), "65534\n65534\n65534\n");
}

TEST(SubprocessTest, SetsTheChildsOpenFilesLimit) {
  SubprocessOptions options = Shell("ulimit -n");
  options.open_files_limit = 300;
  ASSERT_OK_AND_ASSIGN(Subprocess child, Subprocess::Start(options));
  ASSERT_OK(child.Wait(kWait));
  EXPECT_EQ(child.ReadStdout(), "300\n");
}

TEST(SubprocessTest, IgnoredSignalsAreResetForTheChild) {
  // SIG_IGN survives exec; a member must still die from SIGTERM.
  struct sigaction ignore {}, previous {};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(sigaction(SIGTERM, &ignore, &previous), 0);
  absl::StatusOr<Subprocess> child = Subprocess::Start(Shell("exec sleep 30"));
  sigaction(SIGTERM, &previous, nullptr);
  ASSERT_OK(child);
  ASSERT_OK(child->Signal(SIGTERM));
  ASSERT_OK_AND_ASSIGN(int status, child->Wait(kWait));
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) << DescribeWaitStatus(status);
  EXPECT_EQ(child->Signal(SIGTERM).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(SubprocessTest, WaitTimeoutKillsTheChild) {
  ASSERT_OK_AND_ASSIGN(Subprocess child, Subprocess::Start(Shell("exec sleep 30")));
  EXPECT_TRUE(child.Running());
  absl::Time start = absl::Now();
  absl::StatusOr<int> status = child.Wait(absl::Milliseconds(50));
  EXPECT_EQ(status.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_FALSE(child.Running());
  ASSERT_TRUE(child.wait_status().has_value());
  EXPECT_TRUE(WIFSIGNALED(*child.wait_status()) && WTERMSIG(*child.wait_status()) == SIGKILL);
}

TEST(SubprocessTest, DestructorKillsAndReaps) {
  pid_t pid;
  {
    ASSERT_OK_AND_ASSIGN(Subprocess child, Subprocess::Start(Shell("exec sleep 30")));
    pid = child.pid();
    Subprocess moved = std::move(child);  // the moved-from one must not kill it
    EXPECT_EQ(moved.pid(), pid);
    EXPECT_TRUE(moved.Running());
  }
  // Reaped: no zombie left under this pid for us.
  EXPECT_EQ(waitpid(pid, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST(SubprocessTest, GrandchildrenDieWhenTheTestProcessExits) {
  // A server's forked workers and a daemon outlive the child a test kills; the test
  // process adopts them and kills them as it exits. A forked copy plays the test process.
  int report[2];
  ASSERT_EQ(pipe(report), 0);
  pid_t test_process = fork();
  ASSERT_GE(test_process, 0);
  if (test_process == 0) {
    close(report[0]);
    absl::StatusOr<Subprocess> shell = Subprocess::Start(Shell("sleep 300 </dev/null >/dev/null 2>&1 & echo $!"));
    if (!shell.ok() || !shell->Wait(kWait).ok()) _exit(2);
    std::string pid = shell->ReadStdout();
    if (write(report[1], pid.data(), pid.size()) != static_cast<ssize_t>(pid.size())) _exit(3);
    exit(0);  // runs the exit handlers, as a test binary's main returning does
  }
  close(report[1]);
  char buffer[32] = {};
  ssize_t n = read(report[0], buffer, sizeof(buffer) - 1);
  close(report[0]);
  int status = 0;
  ASSERT_EQ(waitpid(test_process, &status, 0), test_process);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << DescribeWaitStatus(status);
  ASSERT_GT(n, 0);
  pid_t sleeper = static_cast<pid_t>(atoi(buffer));
  ASSERT_GT(sleeper, 0);
  EXPECT_EQ(kill(sleeper, 0), -1) << "the orphaned sleep " << sleeper << " outlived the test process";
  EXPECT_EQ(errno, ESRCH);
}

TEST(SubprocessTest, LeavesNoFdsBehind) {
  ASSERT_OK_AND_ASSIGN(int before, CountOpenFds(getpid()));
  {
    ASSERT_OK_AND_ASSIGN(Subprocess child, Subprocess::Start(Shell("exit 0")));
    ASSERT_OK(child.Wait(kWait));
  }
  EXPECT_EQ(*CountOpenFds(getpid()), before);
}

}  // namespace
}  // namespace reuseport::testing
