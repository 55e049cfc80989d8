// The shim's logic layer: what each interposed call does for an emulated
// socket. Hooks (hooks_*.cc) forward here in one line; these functions call
// only the real libc functions (real_calls.h).
#ifndef REUSEPORT_SHIM_SHIM_H_
#define REUSEPORT_SHIM_SHIM_H_

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

namespace reuseport::shim {

// socket_setup.cc (Bind, Listen) and socket_routing.cc (the rest)
int Setsockopt(int fd, int level, int name, const void* value, socklen_t len);
int Getsockopt(int fd, int level, int name, void* value, socklen_t* len);
int Bind(int fd, const struct sockaddr* addr, socklen_t len);
int Listen(int fd, int backlog);
int Getsockname(int fd, struct sockaddr* addr, socklen_t* len);
int Getpeername(int fd, struct sockaddr* addr, socklen_t* len);
int Connect(int fd, const struct sockaddr* addr, socklen_t len);
int Shutdown(int fd, int how);

// connection_accept.cc
int Accept4(int fd, struct sockaddr* addr, socklen_t* len, int flags);

// datagram_io.cc
ssize_t Recvfrom(int fd, void* buf, size_t len, int flags, struct sockaddr* from, socklen_t* from_len);
ssize_t Recvmsg(int fd, struct msghdr* msg, int flags);
// recvmsg() on a socket that is not a member: libc's, noting any channels
// that arrive with it (process_life.h).
ssize_t ReceiveMessage(int fd, struct msghdr* msg, int flags);
int Recvmmsg(int fd, struct mmsghdr* msgs, unsigned int count, int flags, struct timespec* timeout);
ssize_t Read(int fd, void* buf, size_t len);
ssize_t Readv(int fd, const struct iovec* iov, int count);
ssize_t Sendto(int fd, const void* buf, size_t len, int flags, const struct sockaddr* to, socklen_t to_len);
ssize_t Sendmsg(int fd, const struct msghdr* msg, int flags);
int Sendmmsg(int fd, struct mmsghdr* msgs, unsigned int count, int flags);
ssize_t Write(int fd, const void* buf, size_t len);
ssize_t Writev(int fd, const struct iovec* iov, int count);
int NextDatagramSize(int fd, int* size);  // FIONREAD on a UDP member

// fd_life.cc
int Close(int fd);
int Dup(int fd);
int Dup3(int old_fd, int new_fd, int flags, bool is_dup2);
int Fcntl(int fd, int cmd, void* arg, bool is_fcntl64);
int Ioctl(int fd, unsigned long request, void* arg);
int CloseRange(unsigned int first, unsigned int last, int flags);
void Closefrom(int lowest);

}  // namespace reuseport::shim

#endif  // REUSEPORT_SHIM_SHIM_H_
