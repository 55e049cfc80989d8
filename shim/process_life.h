// The shim across fork, vfork and exec.
//
// fork: the table lock is taken around fork() with signals blocked, so a
// child never inherits it held and a signal handler that calls close() during
// fork() cannot deadlock; the child keeps every membership (its fds are
// copies), and its own link watcher (link_watcher.h), started once fork()
// returns (the fork hook) or from the last fork handler (forks inside libc,
// such as daemon(3)'s), opens links of its own, so the broker knows every
// process that holds a member, and rejoins a restarted broker even if the
// child never calls accept() (a daemonized master). Round trips other
// threads had under way stay the parent's.
// vfork (and clone(CLONE_VM)): the child shares our memory until it execs, so
// hooks in it change nothing and just call libc.
// exec: a listener the program passes on (no FD_CLOEXEC) is a member's channel;
// the exec family keeps the shim in the new image whatever environment the
// program passes (program_exec.h); the new image's shim finds such fds at
// start and asks the broker which member each belongs to the first time the
// program uses it (or its link watcher does); with no broker to ask, it makes
// the member from the private ends the old image passed on (exec_carry.h).
#ifndef REUSEPORT_SHIM_PROCESS_LIFE_H_
#define REUSEPORT_SHIM_PROCESS_LIFE_H_

#include <sys/socket.h>
#include <sys/types.h>

namespace reuseport::shim {

// Runs from the shim's constructor.
void StartProcessLife();

// fork(): the real one, with the link watcher started in a child that holds
// members once it has returned (link_watcher.h).
pid_t Fork();

// True in a child that shares the shim's memory with its parent (vfork).
bool InVforkChild();

// The fds inherited across exec, or received from another process
// (SCM_RIGHTS), that may be member channels (cheap check).
bool MaybeInheritedChannel(int fd);

// A listener handed over by SCM_RIGHTS (haproxy -x, or its master-worker
// reload) is, on the kernel, the same socket in the same reuseport group: the
// receiver takes it over and the group does not grow. Here it is a member's
// channel, so received fds that look like channels become candidates, and
// the first use attaches this process to that member (RP_OP_ATTACH).
void NoteReceivedChannels(const struct msghdr* msg);
void ForgetInheritedChannel(int fd);
// Attaches every channel inherited across exec that the program has not used
// yet (the link watcher does this when it starts): a new image that only
// waits in epoll for its listener is a holder too, and must rejoin a
// restarted broker like any other. Round trips; call without TableLock.
void AttachInheritedChannels();

// True if an inherited channel not used yet would pass on to a next exec.
bool InheritedChannelSurvivesExec();

}  // namespace reuseport::shim

#endif  // REUSEPORT_SHIM_PROCESS_LIFE_H_
