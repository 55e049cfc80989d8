// The plan behind the filter: the embedded table and what it yields for a kernel.
// Numbers are x86_64's; the tool is built for and tested on x86_64.

#include "denial_plan.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "syscall_version_table.h"

namespace reuseport::legacy_kernel {
namespace {

const SyscallDenial* FindCall(const DenialPlan& plan, int number) {
  auto it = std::find_if(plan.syscalls.begin(), plan.syscalls.end(),
                         [number](const SyscallDenial& d) { return d.number == number; });
  return it == plan.syscalls.end() ? nullptr : &*it;
}

std::vector<std::string> FacilityCalls(const DenialPlan& plan) {
  std::vector<std::string> names;
  for (const FacilityRule* rule : plan.facilities) {
    names.push_back(std::string(rule->facility) + "/" + std::string(rule->syscall));
  }
  return names;
}

KernelVersion TableVersion(absl::string_view name) {
  for (const SyscallIntroduction& row : SyscallIntroductions()) {
    if (row.name == name) return row.version;
  }
  ADD_FAILURE() << name << " is not in the table";
  return {};
}

TEST(LegacyKernelTable, IsEmbeddedSortedAndCorrected) {
  const auto rows = SyscallIntroductions();
  ASSERT_GT(rows.size(), 400u);
  EXPECT_TRUE(std::is_sorted(rows.begin(), rows.end(),
                             [](const auto& a, const auto& b) { return a.name < b.name; }));
  EXPECT_EQ(TableVersion("accept4"), (KernelVersion{2, 6, 28}));
  EXPECT_EQ(TableVersion("getrandom"), (KernelVersion{3, 17}));
  EXPECT_EQ(TableVersion("pread64"), (KernelVersion{2, 2}));       // version from the notes
  EXPECT_EQ(TableVersion("fgetxattr"), (KernelVersion{2, 4, 18}));  // "2.6; 2.4.18"
  EXPECT_EQ(TableVersion("membarrier"), (KernelVersion{4, 3}));     // syscalls(2) says 3.17
  EXPECT_NE(SyscallTableSource().find("manpages-dev"), absl::string_view::npos);
}

#if defined(__x86_64__)

TEST(LegacyKernelPlan, Linux3_2OnX86_64) {
  const DenialPlan plan = PlanDenials({3, 2});
  ASSERT_FALSE(plan.beyond_table);
  EXPECT_EQ(plan.newest_present_number, 311);  // process_vm_writev

  EXPECT_EQ(FindCall(plan, 310), nullptr);  // process_vm_readv, 3.2
  EXPECT_EQ(FindCall(plan, 288), nullptr);  // accept4
  ASSERT_NE(FindCall(plan, 312), nullptr);
  EXPECT_EQ(FindCall(plan, 312)->name, "kcmp");
  EXPECT_EQ(FindCall(plan, 312)->introduced, (KernelVersion{3, 5}));
  ASSERT_NE(FindCall(plan, 436), nullptr);
  EXPECT_EQ(FindCall(plan, 436)->name, "close_range");
  // Not in syscalls(2): denied by number, without a version.
  ASSERT_NE(FindCall(plan, 448), nullptr);
  EXPECT_FALSE(FindCall(plan, 448)->introduced.has_value());
  ASSERT_NE(FindCall(plan, 400), nullptr);  // unassigned on x86_64, still covered
  ASSERT_NE(FindCall(plan, kHighestDeniedSyscallNumber), nullptr);
  EXPECT_EQ(FindCall(plan, kHighestDeniedSyscallNumber + 1), nullptr);

  EXPECT_EQ(FacilityCalls(plan),
            (std::vector<std::string>{"SO_REUSEPORT/setsockopt", "SO_REUSEPORT/getsockopt",
                                      "SO_INCOMING_CPU/getsockopt", "SO_INCOMING_CPU/setsockopt",
                                      "SO_ATTACH_REUSEPORT_CBPF/setsockopt",
                                      "SO_ATTACH_REUSEPORT_EBPF/setsockopt", "SIOCGSKNS/ioctl",
                                      "PR_SET_NO_NEW_PRIVS/prctl", "SECCOMP_MODE_FILTER/prctl",
                                      "EPOLLEXCLUSIVE/epoll_ctl"}));
}

TEST(LegacyKernelPlan, Linux3_9HasSoReuseport) {
  const DenialPlan plan = PlanDenials({3, 9});
  const auto calls = FacilityCalls(plan);
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "SO_REUSEPORT/setsockopt"), 0);
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "SO_INCOMING_CPU/getsockopt"), 1);
}

TEST(LegacyKernelPlan, NewestTableKernelStillDeniesLaterNumbers) {
  const DenialPlan plan = PlanDenials({5, 14});
  ASSERT_FALSE(plan.beyond_table);
  EXPECT_EQ(plan.newest_present_number, 447);  // memfd_secret
  EXPECT_NE(FindCall(plan, 448), nullptr);
  EXPECT_EQ(FindCall(plan, 442), nullptr);  // mount_setattr (5.12): below 447, kept
}

#endif  // __x86_64__

TEST(LegacyKernelPlan, BeyondTheTableDeniesNothing) {
  const DenialPlan plan = PlanDenials({6, 1});
  EXPECT_TRUE(plan.beyond_table);
  EXPECT_TRUE(plan.syscalls.empty());
  EXPECT_TRUE(plan.facilities.empty());
}

}  // namespace
}  // namespace reuseport::legacy_kernel
