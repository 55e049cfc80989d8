// This process's open fds, for leak checks. The broker under test runs in a
// thread of the fuzzer, so its fds are counted here too.
#ifndef REUSEPORT_TESTS_FUZZ_OPEN_FDS_H_
#define REUSEPORT_TESTS_FUZZ_OPEN_FDS_H_

#include <string>

namespace reuseport::fuzz {

// The number of entries of /proc/self/fd, not counting the one used to read it.
int CountOpenFds();

// "fd -> target" lines, to show what leaked when a count differs.
std::string DescribeOpenFds();

}  // namespace reuseport::fuzz

#endif  // REUSEPORT_TESTS_FUZZ_OPEN_FDS_H_
