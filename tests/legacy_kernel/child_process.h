#ifndef REUSEPORT_TESTS_LEGACY_KERNEL_CHILD_PROCESS_H_
#define REUSEPORT_TESTS_LEGACY_KERNEL_CHILD_PROCESS_H_

#include <string>
#include <vector>

namespace reuseport::legacy_kernel::testing {

// How a finished child process ended and what it printed.
struct ChildResult {
  int exit_code = -1;    // -1 when killed by a signal
  int term_signal = 0;   // 0 when it exited
  std::string out;
  std::string err;
};

// Runs argv[0] (no PATH search) with argv, stdin from /dev/null, and waits for it.
// Aborts the test program if the process cannot even be started.
ChildResult RunChild(const std::vector<std::string>& argv);

}  // namespace reuseport::legacy_kernel::testing

#endif  // REUSEPORT_TESTS_LEGACY_KERNEL_CHILD_PROCESS_H_
