// Which fds belong to the shim, and the state of each emulated socket ("member").
//
// Lookups are lock-free (one load and a compare for fds that are not ours);
// changes happen under one process-wide lock with signals blocked, so a signal
// handler that calls close() cannot deadlock against the thread it interrupted.
//
// The lock is never held across a round trip to the broker (up to 1 s to
// connect, 3 s for a reply): the thread that talks marks the member busy,
// releases the lock, talks, retakes the lock and commits or rolls back. While
// a member is busy:
//   - close/dup2/close_range of its last program fd do not release it; they
//     mark it abandoned, and the talking thread releases it when it is done
//     (its private fds stay valid under it until then);
//   - another bind/listen/attach of the same member waits for the first to
//     finish (bounded by the round trip's own timeouts), without the lock;
//   - a fork leaves the child to settle it (process_life.cc).
// So a stopped broker delays no close(), dup(), fork() or signal handler of
// the program, only the call that is talking to it.
#ifndef REUSEPORT_SHIM_MEMBER_TABLE_H_
#define REUSEPORT_SHIM_MEMBER_TABLE_H_

#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "reuseport/datagram_ring.h"
#include "socket_options.h"

namespace reuseport::shim {

constexpr int kMaxTrackedFd = 65536;
constexpr int kMaxMembers = 4096;

enum class MemberState : uint8_t {
  kFree = 0,
  kPending,    // SO_REUSEPORT set, not bound: the program's fd is still its own socket
  kBound,      // TCP, bound: the program's fd is the option holder until listen()
  kListening,  // TCP, listening: the program's fd is the channel
  kDatagram,   // UDP, bound: the program's fd is the channel
  kAttaching,  // an inherited channel being recognised (RP_OP_ATTACH in flight)
};

struct Member {
  MemberState state;
  uint32_t busy;      // a futex word: 1 while a thread talks to the broker for this member
  uint8_t abandoned;  // its last program fd went while busy: released when the round trip ends
  uint8_t protocol;  // RP_PROTO_TCP / RP_PROTO_UDP
  uint8_t family;    // AF_INET / AF_INET6
  uint8_t v6only;
  uint8_t group_family;  // AF_INET / AF_INET6 of the group's real socket
  int fd_refs;       // program fds of this process that refer to this member
  ino_t socket_ino;  // kPending: inode of the program's socket, to notice a reused fd number
  int link_fd;       // connection to the broker
  pid_t link_pid;    // the process that opened link_fd
  int channel_fd;    // kBound: the member's channel end, swapped in by listen()
  int channel_peer_fd;  // the broker's end of the channel, held so a broker restart cannot close it
  int group_fd;      // the group's real socket: UDP replies leave from it; survives a broker restart
  int holder_fd;     // a socket of the program's type holding its socket options
  int backlog;
  uint64_t member_id;
  uint64_t group_id;
  struct sockaddr_storage bound;
  socklen_t bound_len;
  InheritedOptions inherited;  // TCP: options accepted sockets must end up with
  // UDP
  uint8_t want_pktinfo;     // IP_PKTINFO / IPV6_RECVPKTINFO enabled by the program
  uint8_t connected;        // connect() recorded a default destination
  struct sockaddr_storage peer;
  socklen_t peer_len;
  struct rp_ring ring;   // its datagram ring (member_ring.h); ring.header null: datagrams come on the channel
  size_t ring_map_size;
  int ring_fd;           // private: kept for an exec'd image's ATTACH and for REJOIN
  int64_t ring_stuck_since;  // CLOCK_MONOTONIC ns when pending was first seen stuck (datagram_ring.h); 0: not
};

// Nonzero once the shim has anything to look up (a member exists, or fds
// inherited across exec may be channels). Until then a hook on an fd costs one
// load and a branch before it calls libc.
extern uint8_t g_engaged;
inline bool ShimEngaged() { return __builtin_expect(__atomic_load_n(&g_engaged, __ATOMIC_RELAXED) != 0, 0); }
void MarkEngaged();

// The member a program fd refers to, or null. The hot path of every hook.
Member* LookupMember(int fd);

// True if fd is one of the shim's own private fds (shielded from the program).
bool IsPrivateFd(int fd);

// False until the first member exists: most programs never get past this.
bool TablesActive();

class TableLock {
 public:
  TableLock();
  ~TableLock();
  TableLock(const TableLock&) = delete;
  TableLock& operator=(const TableLock&) = delete;

  // For a round trip: lets go of the lock (and restores the signal mask),
  // then takes it again.
  void Release();
  void Acquire();

 private:
  sigset_t saved_;
  bool held_ = false;
};

// Round trips to the broker on a member's behalf (see the top comment).
// All require TableLock.
void BeginRoundTrip(Member* m);
// Ends it. False when the program dropped the member meanwhile: it has been
// released, and the caller must not touch it (nor the fds it read from it).
bool EndRoundTrip(Member* m);
// Waits, with the lock let go, until m is no longer busy (bounded); the
// caller must look the member up again afterwards.
void WaitWhileBusy(Member* m, TableLock& lock);

// All below require TableLock.
Member* AllocateMember();  // null when the table is full or memory is short
void ReleaseMember(Member* m);  // closes the member's private fds
bool MapFd(int fd, Member* m);  // false if fd is beyond what the table tracks
void UnmapFd(int fd);
void MarkPrivateFd(int fd, Member* m);
void UnmarkPrivateFd(int fd);
// The private fd old_fd now lives at new_fd (the member's field is updated).
void ReassignPrivateFd(int old_fd, int new_fd);
// Shields fd as private before any member owns it (exec_carry.h).
void MarkUnownedPrivateFd(int fd);
int MemberIndex(const Member* m);

// Moves a freshly created private fd out of the program's way (to a high,
// close-on-exec number) and marks it. Returns the new fd (or fd on failure).
int AdoptPrivateFd(int fd, Member* m);

// True if a program fd of some member is open without FD_CLOEXEC (an exec
// would pass it on). Reads the table without the lock: exec is the last thing
// a process does, and a vfork child must not take our locks.
bool ProgramFdSurvivesExec();

// A program fd that refers to m (its channel, once listening), or -1.
int FindProgramFd(const Member* m);
// A program fd of m that stays open across exec (no FD_CLOEXEC), or -1.
int FindProgramFdPassingOn(const Member* m);

// Visits every member in use. Requires TableLock.
template <typename F>
void ForEachMember(F f);
Member* MemberAt(int index);  // null when index is out of range

// Releases one program fd's reference; closes the member when it was the last
// (or marks it abandoned while a round trip is under way).
void DropFdReference(int fd, Member* m);
void DropReference(Member* m);

// For the fork handlers (process_life.cc).
void LockTableForFork();
void UnlockTableAfterFork();
void ResetTableLockInChild();

// A new fd (from socket()) at a number the table still maps belongs to a socket
// closed behind the shim's back: forget the old member.
void ForgetStaleFd(int fd);

template <typename F>
void ForEachMember(F f) {
  for (int i = 0; i < kMaxMembers; ++i) {
    Member* m = MemberAt(i);
    if (m == nullptr) return;
    if (m->state != MemberState::kFree) f(m);
  }
}

}  // namespace reuseport::shim

#endif  // REUSEPORT_SHIM_MEMBER_TABLE_H_
