// Socket options and ioctls newer than the emulated kernel fail as that kernel
// answered, while the calls that carry them keep working.

#include <gtest/gtest.h>

#include "probe.h"

namespace reuseport::legacy_kernel::testing {
namespace {

TEST(LegacyKernelSocketOptions, SoReuseportArrivesIn3_9) {
  const std::vector<std::string> checks = {"setsockopt_reuseport", "getsockopt_reuseport"};
  ProbeAnswers real = ProbeDirectly(checks);
  ASSERT_EQ(real["setsockopt_reuseport"], "OK");
  ASSERT_EQ(real["getsockopt_reuseport"], "OK");

  for (const char* kernel : {"3.2", "3.8"}) {
    ProbeAnswers old = ProbeUnder(kernel, checks);
    EXPECT_EQ(old["setsockopt_reuseport"], "ENOPROTOOPT") << "Linux " << kernel;
    EXPECT_EQ(old["getsockopt_reuseport"], "ENOPROTOOPT") << "Linux " << kernel;
  }
  ProbeAnswers first = ProbeUnder("3.9", checks);
  EXPECT_EQ(first["setsockopt_reuseport"], "OK");
  EXPECT_EQ(first["getsockopt_reuseport"], "OK");
}

// The kernel reads level and optname from the low 32 bits of their registers; junk in
// the high bits must not let SO_REUSEPORT through.
TEST(LegacyKernelSocketOptions, SoReuseportRuleIgnoresHighRegisterBits) {
  ASSERT_EQ(ProbeDirectly({"setsockopt_reuseport_high_bits"})["setsockopt_reuseport_high_bits"], "OK");
  EXPECT_EQ(ProbeUnder("3.8", {"setsockopt_reuseport_high_bits"})["setsockopt_reuseport_high_bits"],
            "ENOPROTOOPT");
}

// What a server sees: the option is refused, so the second bind to the port fails,
// exactly as on a pre-3.9 kernel.
TEST(LegacyKernelSocketOptions, SecondBindToPortFailsBefore3_9) {
  const std::vector<std::string> checks = {"setsockopt_reuseport", "reuseport_second_bind"};
  ASSERT_EQ(ProbeDirectly(checks)["reuseport_second_bind"], "OK");

  ProbeAnswers old = ProbeUnder("3.8", checks);
  EXPECT_EQ(old["setsockopt_reuseport"], "ENOPROTOOPT");
  EXPECT_EQ(old["reuseport_second_bind"], "EADDRINUSE");
  EXPECT_EQ(ProbeUnder("3.9", checks)["reuseport_second_bind"], "OK");
}

// socket(7): "gettable since Linux 3.19, settable since Linux 4.4".
TEST(LegacyKernelSocketOptions, SoIncomingCpuReadableIn3_19SettableIn4_4) {
  const std::vector<std::string> checks = {"getsockopt_incoming_cpu", "setsockopt_incoming_cpu"};
  ProbeAnswers real = ProbeDirectly(checks);
  ASSERT_EQ(real["getsockopt_incoming_cpu"], "OK");
  ASSERT_EQ(real["setsockopt_incoming_cpu"], "OK");

  EXPECT_EQ(ProbeUnder("3.18", checks)["getsockopt_incoming_cpu"], "ENOPROTOOPT");
  ProbeAnswers readable = ProbeUnder("4.3", checks);
  EXPECT_EQ(readable["getsockopt_incoming_cpu"], "OK");
  EXPECT_EQ(readable["setsockopt_incoming_cpu"], "ENOPROTOOPT");
  EXPECT_EQ(ProbeUnder("4.4", checks)["setsockopt_incoming_cpu"], "OK");
}

TEST(LegacyKernelSocketOptions, ReuseportCbpfArrivesIn4_5) {
  ASSERT_EQ(ProbeDirectly({"attach_reuseport_cbpf"})["attach_reuseport_cbpf"], "OK");
  EXPECT_EQ(ProbeUnder("4.4", {"attach_reuseport_cbpf"})["attach_reuseport_cbpf"], "ENOPROTOOPT");
  EXPECT_EQ(ProbeUnder("4.5", {"attach_reuseport_cbpf"})["attach_reuseport_cbpf"], "OK");
}

TEST(LegacyKernelSocketOptions, SiocgsknsArrivesIn4_9) {
  const std::string real = ProbeDirectly({"ioctl_siocgskns"})["ioctl_siocgskns"];
  ASSERT_NE(real, "ENOTTY");  // OK, or EPERM without CAP_NET_ADMIN
  EXPECT_EQ(ProbeUnder("4.8", {"ioctl_siocgskns"})["ioctl_siocgskns"], "ENOTTY");
  EXPECT_EQ(ProbeUnder("4.9", {"ioctl_siocgskns"})["ioctl_siocgskns"], real);
}

// Not filtered (the flag sits behind a pointer), and a pre-4.5 kernel accepted it too.
TEST(LegacyKernelSocketOptions, EpollExclusiveSucceedsAsOnOldKernels) {
  EXPECT_EQ(ProbeUnder("3.2", {"epoll_exclusive"})["epoll_exclusive"], "OK");
}

}  // namespace
}  // namespace reuseport::legacy_kernel::testing
