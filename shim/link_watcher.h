// A thread in each process that holds members: it gives the process links of
// its own to its members (after fork), notices when the broker goes and
// rejoins the next one.
//
// Each member holds its group's real socket and both ends of its channel, so a
// broker that exits or crashes takes nothing with it: connections wait in the
// kernel's backlog. The watcher sees the broker's end of the links close, and
// as soon as a broker answers on the same socket path (inotify on its
// directory, else every 200 ms) presents each member to it (RP_OP_REJOIN).
// The program does nothing and notices nothing. Round trips are made without
// the table lock (member_table.h), so a stopped broker stalls only this thread.
// A forked child starts its own watcher at fork when it holds members.
#ifndef REUSEPORT_SHIM_LINK_WATCHER_H_
#define REUSEPORT_SHIM_LINK_WATCHER_H_

#include <sys/types.h>

namespace reuseport::shim {

// Starts the watcher in this process if it has none; cheap when it has.
void EnsureLinkWatcher();

// A child after fork has no watcher thread until it needs one.
void ForgetLinkWatcherAfterFork();

// The fork() hook brackets the real fork with these. A child that holds
// members starts its watcher once fork() has returned, after every fork
// handler and any fork interceptor (a sanitizer's) has run; forks the hook
// does not see (daemon(3) calls fork inside libc) start it from the last
// fork handler instead.
void BeforeForkHook();
void AfterForkHook(pid_t pid);

}  // namespace reuseport::shim

#endif  // REUSEPORT_SHIM_LINK_WATCHER_H_
