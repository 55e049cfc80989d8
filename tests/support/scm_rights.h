// Sending bytes with fds over a Unix socket (SCM_RIGHTS), as the tests' raw
// protocol clients do.
#ifndef REUSEPORT_TESTS_SUPPORT_SCM_RIGHTS_H_
#define REUSEPORT_TESTS_SUPPORT_SCM_RIGHTS_H_

#include <sys/types.h>

#include <cstddef>

#include "absl/types/span.h"

namespace reuseport::testing {

// One sendmsg() of `size` bytes with `fds` attached (none: no control
// message), with `flags` and MSG_NOSIGNAL; the packing is
// include/reuseport/fd_passing.h's. Returns what sendmsg returns.
ssize_t SendWithFds(int socket, const void* data, size_t size, absl::Span<const int> fds, int flags = 0);

}  // namespace reuseport::testing

#endif  // REUSEPORT_TESTS_SUPPORT_SCM_RIGHTS_H_
