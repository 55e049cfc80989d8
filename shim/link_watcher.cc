#include "link_watcher.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "broker_link.h"
#include "member_attach.h"
#include "member_ring.h"
#include "member_table.h"
#include "process_life.h"
#include "raw_log.h"
#include "real_calls.h"
#include "reuseport/address_codec.h"
#include "reuseport/protocol.h"
#include "settings.h"

namespace reuseport::shim {

namespace {

// 0: no watcher in this process; 1: starting or running.
int g_running = 0;

constexpr int kMaxWatched = kMaxMembers;
constexpr int kRetryMs = 200;

struct Watched {
  int fd;
  int member;
};

int OpenInotify() {
  int fd = static_cast<int>(syscall(SYS_inotify_init1, IN_CLOEXEC | IN_NONBLOCK));
  if (fd < 0) return -1;
  char dir[sizeof(Settings::socket_path)];
  strcpy(dir, GetSettings().socket_path);
  char* slash = strrchr(dir, '/');
  if (slash == nullptr) {
    strcpy(dir, ".");
  } else if (slash == dir) {
    dir[1] = '\0';
  } else {
    *slash = '\0';
  }
  if (syscall(SYS_inotify_add_watch, fd, dir, IN_CREATE | IN_MOVED_TO | IN_ATTRIB) < 0) {
    Real().close(fd);
    return -1;
  }
  return fd;
}

// The member's end of its channel: the program's fd once listening or bound
// (UDP), the private one before.
int ChannelOf(Member* m) {
  if (m->state == MemberState::kBound) return m->channel_fd;
  return FindProgramFd(m);
}

bool Settled(const Member* m) {
  return m->state == MemberState::kBound || m->state == MemberState::kListening || m->state == MemberState::kDatagram;
}

// What a REJOIN needs, read under the lock.
struct RejoinPlan {
  int member;
  int fds[4];
  int fd_count;
  struct rp_rejoin_request request;
};

// Presents one member to a new broker. A round trip: without the lock.
int SendRejoin(const RejoinPlan& plan, BrokerReply* reply) {
  int link = ConnectBroker();
  if (link < 0) return -1;
  // A transport failure is errno's, a refusal the reply's: never "success".
  int err = CallBroker(link, RP_OP_REJOIN, &plan.request, sizeof(plan.request), plan.fds, plan.fd_count, reply) != 0
                ? (errno != 0 ? errno : EIO)
                : reply->header.status;
  if (err != 0) {
    RawLog(kLogWarn).Str("rejoining the broker failed for member ").Uint(plan.request.member_key).Str(": ")
        .Errno(err).Emit();
    CloseReplyFds(reply);
    Real().close(link);
    return -1;
  }
  CloseReplyFds(reply);
  return link;
}

// Rejoins every member whose link is gone. Returns how many rejoined; those
// that failed (and said so) are tried again on the watcher's next round.
int RejoinOrphans(pid_t me) {
  static RejoinPlan plans[kMaxWatched];
  int count = 0;
  {
    TableLock lock;
    ForEachMember([&](Member* m) {
      if (!Settled(m) || m->link_fd >= 0 || m->busy || count >= kMaxWatched) return;
      int channel = ChannelOf(m);
      if (channel < 0 || m->channel_peer_fd < 0 || m->group_fd < 0) return;
      RejoinPlan& p = plans[count++];
      p = RejoinPlan{};
      p.member = MemberIndex(m);
      p.fds[0] = channel;
      p.fds[1] = m->channel_peer_fd;
      p.fds[2] = m->group_fd;
      p.fd_count = 3;
      if (m->ring_fd >= 0) p.fds[p.fd_count++] = m->ring_fd;  // the new broker writes on into it
      rp_address_from_sockaddr(reinterpret_cast<const struct sockaddr*>(&m->bound), m->bound_len, &p.request.bound);
      p.request.protocol = m->protocol;
      p.request.v6only = m->v6only;
      p.request.listening = m->state == MemberState::kListening || m->state == MemberState::kDatagram;
      p.request.backlog = m->backlog;
      p.request.member_key = m->member_id;
      BeginRoundTrip(m);
    });
  }
  int rejoined = 0;
  for (int i = 0; i < count; ++i) {
    BrokerReply reply;
    int link = SendRejoin(plans[i], &reply);
    TableLock lock;
    Member* m = MemberAt(plans[i].member);
    if (!EndRoundTrip(m)) {  // the program closed it meanwhile
      if (link >= 0) Real().close(link);
      continue;
    }
    if (link < 0) continue;
    if (reply.payload_size == sizeof(rp_member_reply)) {
      m->member_id = reply.payload.member.member_id;
      m->group_id = reply.payload.member.group_id;
      // A broker that does not write into the ring sends datagrams as records.
      if (!(reply.payload.member.flags & RP_MEMBER_RING)) DropRing(m);
    }
    m->link_fd = AdoptPrivateFd(link, m);
    m->link_pid = me;
    if (m->state != MemberState::kBound) {
      int channel = FindProgramFd(m);
      if (channel >= 0) MirrorInheritance(m, channel);
    }
    ++rejoined;
  }
  return rejoined;
}

// A forked child holds its parent's links: it opens links of its own, so the
// broker knows every process that holds a member (and a parent's exit or
// close cannot leave the child's members without a link). Without the lock
// while asking.
void OpenOwnLinks(pid_t me) {
  static int members[kMaxWatched], channels[kMaxWatched];
  int count = 0;
  {
    TableLock lock;
    ForEachMember([&](Member* m) {
      if (!Settled(m) || m->link_fd < 0 || m->link_pid == me || m->busy || count >= kMaxWatched) return;
      int channel = ChannelOf(m);
      if (channel < 0) return;
      members[count] = MemberIndex(m);
      channels[count++] = channel;
      BeginRoundTrip(m);
    });
  }
  for (int i = 0; i < count; ++i) {
    int link = OpenOwnLink(channels[i]);
    TableLock lock;
    Member* m = MemberAt(members[i]);
    if (!EndRoundTrip(m)) {
      if (link >= 0) Real().close(link);
      continue;
    }
    // No broker: the parent's copy stays, and is watched like any link.
    if (link >= 0) InstallOwnLink(m, link, me);
  }
}

void* Watch(void*) {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);  // the host's signals are the host's threads'
  prctl(PR_SET_NAME, "reuseport-link");
  pid_t me = static_cast<pid_t>(syscall(SYS_getpid));
  int inotify = OpenInotify();
  static Watched watched[kMaxWatched];
  static struct pollfd fds[kMaxWatched + 1];
  bool told = false;
  for (;;) {
    OpenOwnLinks(me);
    AttachInheritedChannels();  // those a broker could not take yet
    int n = 0, orphans = 0;
    {
      TableLock lock;
      ForEachMember([&](Member* m) {
        if (!Settled(m)) return;
        if (m->link_fd < 0) {
          ++orphans;
        } else if (n < kMaxWatched) {
          // Links inherited from a parent too: if the broker goes, every
          // process that holds a member rejoins it (the broker merges them).
          watched[n] = {m->link_fd, MemberIndex(m)};
          fds[n] = {m->link_fd, POLLIN | POLLRDHUP, 0};
          ++n;
        }
      });
    }
    int total = n;
    if (inotify >= 0) fds[total++] = {inotify, POLLIN, 0};
    // With nothing to watch and nothing to rejoin, look again now and then:
    // members come and go without telling us.
    int timeout = orphans > 0 ? kRetryMs : 1000;
    int ready = poll(fds, static_cast<nfds_t>(total), timeout);
    if (ready < 0 && errno != EINTR) {
      struct timespec pause = {0, kRetryMs * 1000000L};
      nanosleep(&pause, nullptr);
      continue;
    }
    if (inotify >= 0 && ready > 0 && (fds[total - 1].revents & POLLIN)) {
      char events[4096];
      while (Real().read(inotify, events, sizeof(events)) > 0) {
      }
    }
    for (int i = 0; i < n && ready > 0; ++i) {
      if (fds[i].revents == 0) continue;
      char byte;
      ssize_t peeked = Real().recv(watched[i].fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      bool closed = peeked == 0 || (peeked < 0 && errno != EAGAIN && errno != EINTR) ||
                    (fds[i].revents & (POLLHUP | POLLERR | POLLRDHUP));
      if (!closed) continue;
      TableLock lock;
      Member* m = MemberAt(watched[i].member);
      if (m == nullptr || !Settled(m) || m->busy || m->link_fd != watched[i].fd) continue;
      UnmarkPrivateFd(m->link_fd);
      Real().close(m->link_fd);
      m->link_fd = -1;
      ++orphans;
      if (!told) {
        RawLog(kLogWarn).Str("the broker went away; members keep their sockets and will rejoin the next broker at ")
            .Str(GetSettings().socket_path).Emit();
        told = true;
      }
    }
    if (orphans == 0) continue;
    int probe = ConnectBroker();
    if (probe < 0) continue;
    Real().close(probe);
    int rejoined = RejoinOrphans(me);
    if (rejoined > 0) {
      RawLog(kLogInfo).Str("rejoined the broker with ").Int(rejoined).Str(" member(s)").Emit();
      told = false;
    }
  }
  return nullptr;
}

// A process that holds members gets its own watcher, whether or not it ever
// calls accept().
void StartWatcherIfHolding() {
  bool holds = false;
  {
    TableLock lock;
    ForEachMember([&](Member* m) { holds = holds || Settled(m); });
  }
  if (holds) EnsureLinkWatcher();
}

__thread int t_in_fork_hook = 0;  // this thread is inside the fork() hook
int g_start_after_fork = 0;       // the child's fork() hook starts the watcher

// Runs in a forked child, registered once the process has members (so after
// the fork handlers of the libraries it had loaded by then, such as a malloc
// that must be unlocked before a thread can start). Inside the fork() hook it
// leaves the start to the hook, once fork() has returned.
void StartWatcherInChild() {
  if (t_in_fork_hook) {
    g_start_after_fork = 1;
    return;
  }
  StartWatcherIfHolding();
}

}  // namespace

void EnsureLinkWatcher() {
  if (__atomic_load_n(&g_running, __ATOMIC_ACQUIRE)) return;
  static pthread_once_t child_handler_once = PTHREAD_ONCE_INIT;
  pthread_once(&child_handler_once, [] { pthread_atfork(nullptr, nullptr, StartWatcherInChild); });
  int expected = 0;
  if (!__atomic_compare_exchange_n(&g_running, &expected, 1, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  pthread_t thread;
  // The thread must not take the host's signals even for an instant.
  sigset_t all, saved;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &saved);
  int err = pthread_create(&thread, &attr, Watch, nullptr);
  pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  pthread_attr_destroy(&attr);
  if (err != 0) {
    __atomic_store_n(&g_running, 0, __ATOMIC_RELEASE);
    static int warned;
    if (FirstTime(&warned)) RawLog(kLogWarn).Str("cannot start the link watcher; members will not rejoin a restarted broker").Emit();
  }
}

void ForgetLinkWatcherAfterFork() { __atomic_store_n(&g_running, 0, __ATOMIC_RELEASE); }

void BeforeForkHook() { t_in_fork_hook = 1; }

void AfterForkHook(pid_t pid) {
  t_in_fork_hook = 0;
  if (pid == 0 && g_start_after_fork) {
    g_start_after_fork = 0;
    StartWatcherIfHolding();
  }
}

}  // namespace reuseport::shim
