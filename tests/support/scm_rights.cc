#include "scm_rights.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <vector>

#include "reuseport/fd_passing.h"

namespace reuseport::testing {

ssize_t SendWithFds(int socket, const void* data, size_t size, absl::Span<const int> fds, int flags) {
  struct iovec iov = {const_cast<void*>(data), size};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  // Any number of fds: the fuzzers send more than a record may carry.
  std::vector<char> control(RP_FDS_CONTROL_SPACE(fds.empty() ? 1 : fds.size()));
  rp_fds_attach(&msg, control.data(), control.size(), fds.data(), fds.size());
  return sendmsg(socket, &msg, flags | MSG_NOSIGNAL);
}

}  // namespace reuseport::testing
