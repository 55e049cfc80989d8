// System calls newer than the emulated kernel fail with ENOSYS; older ones still work.
// Each test first asks the real kernel, so a call missing here skips the test instead
// of passing it for the wrong reason. "Missing" includes a container's seccomp profile
// answering ENOSYS or EPERM for a call it blocks (Docker's does for clone3): the skip
// says what the real kernel answered. Where the call exists, the runner must pass on
// whatever the real kernel answers, so the tests compare with that answer.

#include <gtest/gtest.h>

#include <string>

#include "probe.h"

namespace reuseport::legacy_kernel::testing {
namespace {

// Why the host's own answer to `call` leaves nothing to compare ("" if it
// does): the call is missing, or a seccomp profile blocks it.
std::string Unavailable(const std::string& call, const std::string& real) {
  if (real == "ENOSYS" || real == "EPERM" || real.empty()) {
    return call + " answers " + (real.empty() ? "nothing" : real) +
           " on this host (a kernel without it, or a seccomp profile blocking it): nothing to compare";
  }
  return "";
}

#define SKIP_IF_UNAVAILABLE(call, real) \
  if (const std::string why = Unavailable(call, real); !why.empty()) GTEST_SKIP() << why

TEST(LegacyKernelSyscalls, GetrandomAndMemfdCreateArriveIn3_17) {
  const std::vector<std::string> checks = {"getrandom", "memfd_create"};
  ProbeAnswers real = ProbeDirectly(checks);
  SKIP_IF_UNAVAILABLE("getrandom", real["getrandom"]);
  SKIP_IF_UNAVAILABLE("memfd_create", real["memfd_create"]);
  // GRND_NONBLOCK answers EAGAIN until the kernel's pool is ready (early
  // boot, some VMs): the call is there all the same, and may become OK
  // between two probes.
  auto getrandom_present = [](const std::string& answer) { return answer == "OK" || answer == "EAGAIN"; };
  ASSERT_TRUE(getrandom_present(real["getrandom"])) << real["getrandom"];

  for (const char* kernel : {"3.2", "3.16", "3.16.99"}) {
    ProbeAnswers old = ProbeUnder(kernel, checks);
    EXPECT_EQ(old["getrandom"], "ENOSYS") << "Linux " << kernel;
    EXPECT_EQ(old["memfd_create"], "ENOSYS") << "Linux " << kernel;
  }
  ProbeAnswers first = ProbeUnder("3.17", checks);
  EXPECT_TRUE(getrandom_present(first["getrandom"])) << first["getrandom"];
  EXPECT_EQ(first["memfd_create"], real["memfd_create"]);
}

TEST(LegacyKernelSyscalls, KcmpArrivesIn3_5) {
  const std::string real = ProbeDirectly({"kcmp"})["kcmp"];
  if (real == "ENOSYS") GTEST_SKIP() << "this kernel has no kcmp";
  EXPECT_EQ(ProbeUnder("3.4", {"kcmp"})["kcmp"], "ENOSYS");
  // EPERM or the like where ptrace is restricted; anything but "missing".
  EXPECT_EQ(ProbeUnder("3.5", {"kcmp"})["kcmp"], real);
}

TEST(LegacyKernelSyscalls, ProcessVmReadvArrivesIn3_2) {
  const std::string real = ProbeDirectly({"process_vm_readv"})["process_vm_readv"];
  SKIP_IF_UNAVAILABLE("process_vm_readv", real);
  EXPECT_EQ(ProbeUnder("3.1", {"process_vm_readv"})["process_vm_readv"], "ENOSYS");
  EXPECT_EQ(ProbeUnder("3.2", {"process_vm_readv"})["process_vm_readv"], real);
}

TEST(LegacyKernelSyscalls, IoUringSetupArrivesIn5_1) {
  const std::string real = ProbeDirectly({"io_uring_setup"})["io_uring_setup"];
  if (real == "ENOSYS") GTEST_SKIP() << "this kernel is built without io_uring";
  EXPECT_EQ(ProbeUnder("5.0", {"io_uring_setup"})["io_uring_setup"], "ENOSYS");
  EXPECT_EQ(ProbeUnder("5.1", {"io_uring_setup"})["io_uring_setup"], real);
}

TEST(LegacyKernelSyscalls, Clone3ArrivesIn5_3) {
  const std::string real = ProbeDirectly({"clone3"})["clone3"];
  SKIP_IF_UNAVAILABLE("clone3", real);
  EXPECT_EQ(ProbeUnder("5.2", {"clone3"})["clone3"], "ENOSYS");
  EXPECT_EQ(ProbeUnder("5.3", {"clone3"})["clone3"], real);
}

// process_mrelease (448, Linux 5.15) is newer than the syscalls(2) table (5.14): only
// the by-number rule can deny it.
TEST(LegacyKernelSyscalls, NumberNewerThanTableIsDenied) {
  const std::string real = ProbeDirectly({"raw:448"})["raw:448"];
  if (real == "ENOSYS") GTEST_SKIP() << "this kernel predates process_mrelease";
  EXPECT_EQ(ProbeUnder("3.2", {"raw:448"})["raw:448"], "ENOSYS");
  EXPECT_EQ(ProbeUnder("5.14", {"raw:448"})["raw:448"], "ENOSYS");
  // Newer than the whole table: nothing is known to be missing, nothing is denied.
  EXPECT_EQ(ProbeUnder("5.15", {"raw:448"})["raw:448"], real);
}

TEST(LegacyKernelSyscalls, SocketCallsOlderThan3_2StillWork) {
  const std::vector<std::string> checks = {"accept4", "recvmmsg", "sendmmsg"};
  ProbeAnswers old = ProbeUnder("3.2", checks);
  for (const std::string& check : checks) EXPECT_EQ(old[check], "OK") << check;
}

TEST(LegacyKernelSyscalls, I386CallsFailWithEnosys) {
  const std::string real = ProbeDirectly({"i386_getpid"})["i386_getpid"];
  if (real == "unavailable") GTEST_SKIP() << "this host faults on int $0x80: no i386 entry point to test";
  if (real == "ENOSYS") GTEST_SKIP() << "this kernel has no i386 emulation (ENOSYS)";
  ASSERT_EQ(real, "OK");
  EXPECT_EQ(ProbeUnder("3.2", {"i386_getpid"})["i386_getpid"], "ENOSYS");
  EXPECT_EQ(ProbeUnder("5.14", {"i386_getpid"})["i386_getpid"], "ENOSYS");
}

}  // namespace
}  // namespace reuseport::legacy_kernel::testing
