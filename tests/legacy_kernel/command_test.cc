// The command itself: exit statuses, usage errors, --list/--explain/--help, and real
// programs running under it.

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <sstream>

#include "probe.h"

namespace reuseport::legacy_kernel::testing {
namespace {

// True if some line of `text`, split on whitespace, begins with `fields`: a row of
// the --list table such as {"318", "getrandom", "3.17"}.
bool HasRow(const std::string& text, const std::vector<std::string>& fields) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::vector<std::string> row;
    for (std::string word; row.size() < fields.size() && words >> word;) row.push_back(word);
    if (row == fields) return true;
  }
  return false;
}

bool HasLine(const std::string& text, const std::string& wanted) {
  return ("\n" + text).find("\n" + wanted + "\n") != std::string::npos;
}

TEST(LegacyKernelCommand, ExitStatusIsTheCommands) {
  ChildResult run = RunTool({"--", "/bin/sh", "-c", "exit 7"});
  EXPECT_EQ(run.exit_code, 7) << run.err;
}

// The command replaces the tool, so its death by a signal is seen by our waitpid.
TEST(LegacyKernelCommand, DeathBySignalIsTheCommands) {
  ChildResult run = RunTool({"--", "/bin/sh", "-c", "kill -TERM $$"});
  EXPECT_EQ(run.term_signal, SIGTERM) << "exit code " << run.exit_code << ", stderr: " << run.err;
}

// uname(2) is answered by a supervisor (Linux 5.8+ hosts); elsewhere it shows the
// real release, which these tests then cannot check.
bool HostCanAnswerUname() {
  struct utsname names;
  unsigned major = 0, minor = 0;
  return uname(&names) == 0 && sscanf(names.release, "%u.%u", &major, &minor) == 2 &&
         (major > 5 || (major == 5 && minor >= 8));
}

TEST(LegacyKernelCommand, UnameReportsThePretendedRelease) {
  if (!HostCanAnswerUname()) GTEST_SKIP() << "answering uname needs Linux 5.8 (user notification, POLLHUP)";
  EXPECT_EQ(RunTool({"--kernel", "3.2", "--", LEGACY_KERNEL_UNAME_PROBE}).out, "3.2.0\n");
  EXPECT_EQ(RunTool({"--kernel", "3.8.13", "--", LEGACY_KERNEL_UNAME_PROBE}).out, "3.8.13\n");
  // Children and grandchildren of the command, and uname(1) through libc.
  ChildResult shell = RunTool({"--kernel", "3.2", "--", "/bin/sh", "-c", "uname -r; /bin/sh -c 'uname -r'"});
  EXPECT_EQ(shell.out, "3.2.0\n3.2.0\n") << shell.err;
  // The rest of utsname is the real one.
  struct utsname names;
  ASSERT_EQ(uname(&names), 0);
  EXPECT_EQ(RunTool({"--kernel", "3.2", "--", "/bin/uname", "-m", "-n"}).out,
            std::string(names.nodename) + " " + names.machine + "\n");
}

// A kernel too new for the table has nothing denied and no filter: uname is real.
TEST(LegacyKernelCommand, UnameIsRealWithoutAFilter) {
  struct utsname names;
  ASSERT_EQ(uname(&names), 0);
  EXPECT_EQ(RunTool({"--kernel", "99.0", "--", LEGACY_KERNEL_UNAME_PROBE}).out, std::string(names.release) + "\n");
}

TEST(LegacyKernelCommand, DefaultKernelIs3_2) {
  ChildResult run = RunTool({"--", kProbe, "getrandom", "process_vm_readv"});
  EXPECT_EQ(run.out, "getrandom=ENOSYS\nprocess_vm_readv=OK\n") << run.err;
}

TEST(LegacyKernelCommand, UsageErrorsExit2) {
  const std::vector<std::vector<std::string>> bad_command_lines = {
      {},
      {"--kernel", "3.2"},
      {"--kernel"},
      {"--kernel", "3", "--", "/bin/true"},
      {"--kernel", "3.x", "--", "/bin/true"},
      {"--kernel", "3.2.1.4", "--", "/bin/true"},
      {"--kernel=", "/bin/true"},
      {"--kernel", "+3.2", "/bin/true"},
      {"--frobnicate", "--", "/bin/true"},
  };
  for (const std::vector<std::string>& args : bad_command_lines) {
    ChildResult run = RunTool(args);
    std::string joined;
    for (const std::string& arg : args) joined += " " + arg;
    EXPECT_EQ(run.exit_code, 2) << "args:" << joined;
    EXPECT_NE(run.err.find("usage: reuseport-legacy-kernel"), std::string::npos) << "args:" << joined;
  }
}

TEST(LegacyKernelCommand, CommandNotFoundExits127) {
  ChildResult run = RunTool({"--", "/nonexistent/legacy-kernel-test-command"});
  EXPECT_EQ(run.exit_code, 127);
  EXPECT_NE(run.err.find("/nonexistent/legacy-kernel-test-command"), std::string::npos) << run.err;

  EXPECT_EQ(RunTool({"--", "legacy-kernel-test-command-not-on-path"}).exit_code, 127);
}

TEST(LegacyKernelCommand, CommandNotExecutableExits126) {
  char path[] = "/tmp/legacy_kernel_test_XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  chmod(path, 0644);  // no execute bit for anyone, root included
  ChildResult run = RunTool({"--", path});
  unlink(path);
  EXPECT_EQ(run.exit_code, 126) << run.err;
}

// Options end at the command: its own options must reach it untouched.
TEST(LegacyKernelCommand, CommandOptionsAreNotOurs) {
  EXPECT_EQ(RunTool({"--", "/bin/echo", "--list"}).out, "--list\n");
  EXPECT_EQ(RunTool({"/bin/echo", "--kernel", "9.9"}).out, "--kernel 9.9\n");
}

TEST(LegacyKernelCommand, ListNamesDenialsForTheKernel) {
  ChildResult old = RunTool({"--kernel", "3.2", "--list"});
  EXPECT_EQ(old.exit_code, 0);
  EXPECT_TRUE(HasRow(old.out, {"318", "getrandom", "3.17"})) << old.out;
  EXPECT_TRUE(HasRow(old.out, {"SO_REUSEPORT", "3.9", "setsockopt(SOL_SOCKET,"})) << old.out;
  EXPECT_TRUE(HasRow(old.out, {"EPOLLEXCLUSIVE", "4.5"})) << old.out;
  EXPECT_NE(old.out.find("manpages-dev"), std::string::npos) << old.out;
  EXPECT_FALSE(HasRow(old.out, {"288", "accept4"})) << old.out;

  ChildResult newer = RunTool({"--kernel", "3.17", "--list"});
  EXPECT_FALSE(HasRow(newer.out, {"318", "getrandom"})) << newer.out;
  EXPECT_EQ(newer.out.find("SO_REUSEPORT "), std::string::npos) << newer.out;
  EXPECT_TRUE(HasRow(newer.out, {"321", "bpf", "3.18"})) << newer.out;
}

TEST(LegacyKernelCommand, ListBeyondTheTableDeniesNothing) {
  ChildResult run = RunTool({"--kernel", "6.1", "--list"});
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_NE(run.out.find("nothing is denied"), std::string::npos) << run.out;
  EXPECT_EQ(run.out.find("ENOSYS"), std::string::npos) << run.out;
}

// /proc/self/status shows the seccomp mode (2: filter) and no_new_privs of the command.
TEST(LegacyKernelCommand, FilterIsInstalledOnlyWhenSomethingIsDenied) {
  const std::vector<std::string> show = {"/bin/grep", "-E", "^(Seccomp|NoNewPrivs):", "/proc/self/status"};
  std::vector<std::string> old_args = {"--kernel", "3.2", "--"}, new_args = {"--kernel", "6.1", "--"};
  old_args.insert(old_args.end(), show.begin(), show.end());
  new_args.insert(new_args.end(), show.begin(), show.end());

  EXPECT_EQ(RunTool(old_args).out, "NoNewPrivs:\t1\nSeccomp:\t2\n");
  EXPECT_EQ(RunTool(new_args).out, RunChild(show).out);
}

TEST(LegacyKernelCommand, ExplainPrintsDenialsToStderrThenRuns) {
  ChildResult run = RunTool({"--explain", "--", "/bin/echo", "ran"});
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_EQ(run.out, "ran\n");
  EXPECT_TRUE(HasRow(run.err, {"318", "getrandom", "3.17"})) << run.err;
}

TEST(LegacyKernelCommand, HelpReadsLikeAManualPage) {
  ChildResult run = RunTool({"--help"});
  EXPECT_EQ(run.exit_code, 0);
  for (const char* section : {"NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "EXAMPLES"}) {
    EXPECT_TRUE(HasLine(run.out, section)) << section;
  }
  EXPECT_NE(run.out.find("setuid programs run under this tool WITHOUT"), std::string::npos);
}

// Python asks for getrandom(2) first and must fall back to /dev/urandom.
TEST(LegacyKernelCommand, PythonRunsUnder3_2) {
  if (access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/python3";
  ChildResult run = RunTool({"--kernel", "3.2", "--", "/usr/bin/python3", "-c",
                             "import socket,os; print(len(os.urandom(8)))"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "8\n") << run.err;
}

// glibc's own fallbacks: threads (clone3 -> clone, rseq registration) and stat
// (statx -> fstatat) inside a program that uses them all.
TEST(LegacyKernelCommand, PythonThreadsAndStatRunUnder3_2) {
  if (access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/python3";
  ChildResult run = RunTool({"--", "/usr/bin/python3", "-c",
                             "import os, threading\n"
                             "t = threading.Thread(target=lambda: os.stat('/'))\n"
                             "t.start(); t.join(); print('done')"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "done\n") << run.err;
}

}  // namespace
}  // namespace reuseport::legacy_kernel::testing
