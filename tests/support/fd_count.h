#ifndef REUSEPORT_TESTS_SUPPORT_FD_COUNT_H_
#define REUSEPORT_TESTS_SUPPORT_FD_COUNT_H_

#include <sys/types.h>

#include <map>
#include <string>

#include "absl/status/statusor.h"

namespace reuseport::testing {

// The number of open fds of a process (entries of /proc/PID/fd), for leak
// checks: compare before and after a batch of work.
absl::StatusOr<int> CountOpenFds(pid_t pid);

// fd -> what it refers to ("socket:[1234]", "/tmp/x", "pipe:[56]"), to show
// what leaked when a count differs.
absl::StatusOr<std::map<int, std::string>> ListOpenFds(pid_t pid);

}  // namespace reuseport::testing

#endif  // REUSEPORT_TESTS_SUPPORT_FD_COUNT_H_
