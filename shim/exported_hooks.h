// Every symbol libreuseport.so exports: the interposed libc functions. Each is a
// one-line forwarder (hooks_*.cc) into the shim's own namespace; the version
// script (libreuseport.map) keeps everything else local.
#ifndef REUSEPORT_SHIM_EXPORTED_HOOKS_H_
#define REUSEPORT_SHIM_EXPORTED_HOOKS_H_

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#define RP_EXPORT __attribute__((visibility("default")))

extern "C" {
RP_EXPORT int socket(int, int, int) noexcept;
RP_EXPORT int setsockopt(int, int, int, const void*, socklen_t) noexcept;
RP_EXPORT int getsockopt(int, int, int, void*, socklen_t*) noexcept;
RP_EXPORT int bind(int, const struct sockaddr*, socklen_t) noexcept;
RP_EXPORT int listen(int, int) noexcept;
RP_EXPORT int accept(int, struct sockaddr*, socklen_t*);
RP_EXPORT int accept4(int, struct sockaddr*, socklen_t*, int);
RP_EXPORT int connect(int, const struct sockaddr*, socklen_t);
RP_EXPORT int getsockname(int, struct sockaddr*, socklen_t*) noexcept;
RP_EXPORT int getpeername(int, struct sockaddr*, socklen_t*) noexcept;
RP_EXPORT int shutdown(int, int) noexcept;
RP_EXPORT ssize_t recv(int, void*, size_t, int);
RP_EXPORT ssize_t recvfrom(int, void*, size_t, int, struct sockaddr*, socklen_t*);
RP_EXPORT ssize_t recvmsg(int, struct msghdr*, int);
RP_EXPORT int recvmmsg(int, struct mmsghdr*, unsigned int, int, struct timespec*);
RP_EXPORT ssize_t read(int, void*, size_t);
RP_EXPORT ssize_t readv(int, const struct iovec*, int);
RP_EXPORT ssize_t send(int, const void*, size_t, int);
RP_EXPORT ssize_t sendto(int, const void*, size_t, int, const struct sockaddr*, socklen_t);
RP_EXPORT ssize_t sendmsg(int, const struct msghdr*, int);
RP_EXPORT int sendmmsg(int, struct mmsghdr*, unsigned int, int);
RP_EXPORT ssize_t write(int, const void*, size_t);
RP_EXPORT ssize_t writev(int, const struct iovec*, int);
RP_EXPORT int close(int);
RP_EXPORT int dup(int) noexcept;
RP_EXPORT int dup2(int, int) noexcept;
RP_EXPORT int dup3(int, int, int) noexcept;
RP_EXPORT int fcntl(int, int, ...);
RP_EXPORT int fcntl64(int, int, ...);
RP_EXPORT int ioctl(int, unsigned long, ...) noexcept;
RP_EXPORT int close_range(unsigned int, unsigned int, int) noexcept;
RP_EXPORT void closefrom(int) noexcept;
RP_EXPORT ssize_t __read_chk(int, void*, size_t, size_t);
RP_EXPORT ssize_t __recv_chk(int, void*, size_t, size_t, int);
RP_EXPORT ssize_t __recvfrom_chk(int, void*, size_t, size_t, int, struct sockaddr*, socklen_t*);
RP_EXPORT pid_t fork() noexcept;
RP_EXPORT int execve(const char*, char* const[], char* const[]) noexcept;
RP_EXPORT int execvpe(const char*, char* const[], char* const[]) noexcept;
RP_EXPORT int fexecve(int, char* const[], char* const[]) noexcept;
RP_EXPORT int execv(const char*, char* const[]) noexcept;
RP_EXPORT int execvp(const char*, char* const[]) noexcept;
RP_EXPORT int execl(const char*, const char*, ...) noexcept;
RP_EXPORT int execlp(const char*, const char*, ...) noexcept;
RP_EXPORT int execle(const char*, const char*, ...) noexcept;
}

#endif  // REUSEPORT_SHIM_EXPORTED_HOOKS_H_
