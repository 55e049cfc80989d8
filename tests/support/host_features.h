// What the host a test landed on offers. CI runs on whichever machine is
// free, so a test that needs something a host may lack (IPv6 loopback, user
// namespaces, an installed program, exec from the temporary directory) asks
// first and skips with the reason; it never fails because of the host.
//
// Each probe returns why the thing is unavailable, or "" when it is there.
// The probes ask the kernel or the file system the way the test would use
// the thing, so a "" is an answer, not a guess.
//
// Programs are different: the suite exists to run real programs (Python,
// nginx, dnsmasq, dig), and CI installs them (scripts/setup.sh). Outside CI a
// missing program skips its tests; with REUSEPORT_REQUIRE_PROGRAMS=1, which
// scripts/test.sh sets, it fails them, so CI can never skip them silently.
#ifndef REUSEPORT_TESTS_SUPPORT_HOST_FEATURES_H_
#define REUSEPORT_TESTS_SUPPORT_HOST_FEATURES_H_

#include <string>

#include "gtest/gtest.h"

namespace reuseport::testing {

// TCP and UDP sockets of AF_INET6 bound to [::1]:0.
std::string Ipv6LoopbackUnavailable();

// A child process that calls unshare(CLONE_NEWUSER | CLONE_NEWNET).
std::string UserNamespacesUnavailable();

// A network namespace made by unshare(CLONE_NEWNET) in a child process.
std::string NetworkNamespacesUnavailable();

// Programs in `dir` cannot run when its file system is mounted noexec.
std::string ExecUnavailableIn(const std::string& dir);

// The effective uid is 0: for tests that start processes as other uids,
// bind ports below 1024 or read what the broker keeps of root's capabilities.
std::string RootUnavailable(const std::string& what_for);

// The path of an installed program: `name` in PATH, then in /usr/sbin, /sbin
// and /usr/bin (a non-root PATH may lack the sbin directories). "" if none.
std::string FindProgram(const std::string& name);

// Why `program` (an absolute path, or a name found by FindProgram) cannot be
// run: "<program> is not installed (Debian package <package>)".
std::string ProgramMissing(const std::string& program, const std::string& package);

// REUSEPORT_REQUIRE_PROGRAMS=1: a missing program fails the test.
bool ProgramsRequired();

}  // namespace reuseport::testing

// Skips the test (from the test body or SetUp) when `reason` is not empty.
#define REUSEPORT_SKIP_IF_UNAVAILABLE(reason)                                     \
  if (const std::string reuseport_unavailable = (reason); !reuseport_unavailable.empty()) \
  GTEST_SKIP() << reuseport_unavailable

// Skips the test when `program` is not installed, or fails it under
// REUSEPORT_REQUIRE_PROGRAMS=1 (CI, where scripts/setup.sh installs it).
#define REUSEPORT_REQUIRE_PROGRAM(program, package)                                                  \
  if (const std::string reuseport_missing = ::reuseport::testing::ProgramMissing((program), (package)); \
      !reuseport_missing.empty()) {                                                                  \
    if (::reuseport::testing::ProgramsRequired()) {                                                  \
      FAIL() << reuseport_missing << "; REUSEPORT_REQUIRE_PROGRAMS=1 makes that a failure";          \
    }                                                                                                \
    GTEST_SKIP() << reuseport_missing;                                                               \
  }

#endif  // REUSEPORT_TESTS_SUPPORT_HOST_FEATURES_H_
