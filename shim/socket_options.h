// Socket options that accepted TCP sockets inherit from their listener.
//
// In the emulation every member's connections are accepted from one shared
// socket, so each member's own listener options are kept on a private "holder"
// socket and applied to its accepted sockets where they differ from the shared
// socket's (usually none, so usually no extra system call).
#ifndef REUSEPORT_SHIM_SOCKET_OPTIONS_H_
#define REUSEPORT_SHIM_SOCKET_OPTIONS_H_

#include <stdint.h>
#include <sys/socket.h>

namespace reuseport::shim {

constexpr int kInheritedOptionCount = 14;

struct InheritedOptions {
  int64_t listener[kInheritedOptionCount];  // the shared socket's values
  int64_t wanted[kInheritedOptionCount];    // this member's listener values
  uint32_t differ_mask;                     // bit i: wanted[i] != listener[i]
};

// Index of (level, name) in the inherited-option table, or -1.
int InheritedOptionIndex(int level, int name);

// Reads every inherited option of `fd` (a TCP socket of `family`).
void ReadInheritedOptions(int fd, int family, int64_t values[kInheritedOptionCount]);

// Recomputes differ_mask after listener or wanted changed.
void UpdateDifferMask(InheritedOptions* options);

// Makes `fd` carry `values` where it does not already (creating a holder).
void WriteInheritedOptions(int fd, int family, const int64_t values[kInheritedOptionCount]);

// Applies the member's differing options to a freshly accepted socket.
void ApplyInheritedOptions(int accepted_fd, int family, const InheritedOptions& options);

// Copies what a program may have set on its socket before bind() onto a fresh
// holder socket: the inherited options plus the socket's own (V6ONLY,
// REUSEADDR, timeouts, pktinfo, broadcast, TTL). Used when the program's own
// socket has become the group's.
void CopySocketOptions(int from_fd, int to_fd, int family);

// True for UDP options that act on sending (TTL, TOS, broadcast, multicast):
// replies leave from the shared socket, so these must reach it too.
bool AffectsSending(int level, int name);

// An int option of fd, 0 if it cannot be read; and setting one, unchecked.
int IntOption(int fd, int level, int name);
void SetIntOption(int fd, int level, int name, int v);

// getsockopt()'s answer of an int the shim decides (SO_REUSEPORT, SO_DOMAIN):
// at most *len bytes of v, *len set to what was written; EFAULT, EINVAL as
// the kernel. Returns 0 or -1.
int ReturnInt(int v, void* value, socklen_t* len);

// setsockopt()'s checks of an int argument, as the kernel makes them: EFAULT
// for no value, EINVAL for fewer than sizeof(int) bytes. Returns 0 or -1.
int CheckIntArgument(const void* value, socklen_t len);

}  // namespace reuseport::shim

#endif  // REUSEPORT_SHIM_SOCKET_OPTIONS_H_
