// What socket_setup.cc offers the rest of the shim beyond the hooks' logic
// (shim.h): the first step of membership, for socket_routing.cc's setsockopt.
#ifndef REUSEPORT_SHIM_SOCKET_SETUP_H_
#define REUSEPORT_SHIM_SOCKET_SETUP_H_

#include <sys/socket.h>

namespace reuseport::shim {

// setsockopt(SO_REUSEPORT) on a socket that is not yet a member (or still
// kPending): the kernel's own where it works (REUSEPORT_MODE=auto), else a
// pending member with a link to the broker; ENOPROTOOPT, as an old kernel,
// when there is no broker. Takes and lets go of the table lock itself.
int SetsockoptReuseport(int fd, const void* value, socklen_t len);

}  // namespace reuseport::shim

#endif  // REUSEPORT_SHIM_SOCKET_SETUP_H_
