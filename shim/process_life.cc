#include "process_life.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "exec_carry.h"
#include "link_watcher.h"
#include "member_attach.h"
#include "member_table.h"
#include "exported_hooks.h"
#include "program_exec.h"
#include "raw_log.h"
#include "real_calls.h"
#include "reuseport/fd_passing.h"
#include "settings.h"

namespace reuseport::shim {

namespace {

pid_t g_owner_pid = 0;  // the process whose memory this is

// Candidates for inherited or received channels. Listeners passed across exec
// are low-numbered, so only fds below 1024 are looked at when a new image
// starts; received fds may be anywhere the table tracks.
constexpr int kCandidateFds = kMaxTrackedFd;
constexpr int kInheritedScanFds = 1024;
uint8_t g_candidate_bits[kCandidateFds / 8];
int g_have_candidates = 0;

// The mask a forking thread had, restored after fork in both processes.
__thread sigset_t t_mask_before_fork;

void PrepareFork() {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &t_mask_before_fork);
  LockTableForFork();
}

void AfterForkInParent() {
  UnlockTableAfterFork();
  pthread_sigmask(SIG_SETMASK, &t_mask_before_fork, nullptr);
}

// Atomic: a program thread receiving fds and the link watcher attaching
// them touch the bits at the same time.
void MarkCandidate(int fd) {
  if (static_cast<unsigned>(fd) >= kCandidateFds) return;
  __atomic_fetch_or(&g_candidate_bits[fd / 8], static_cast<uint8_t>(1u << (fd % 8)), __ATOMIC_RELAXED);
  __atomic_store_n(&g_have_candidates, 1, __ATOMIC_RELAXED);
}

// Round trips other threads of the parent had under way do not exist here:
// the child keeps what they had committed before the fork. A member being
// recognised goes back to being an inherited channel.
void SettleRoundTripsInChild() {
  ForEachMember([](Member* m) {
    if (!m->busy) return;
    m->busy = 0;
    if (m->abandoned) {
      ReleaseMember(m);
    } else if (m->state == MemberState::kAttaching) {
      int fd = FindProgramFd(m);
      if (fd >= 0) {
        UnmapFd(fd);
        MarkCandidate(fd);
      }
      ReleaseMember(m);
    }
  });
}

void AfterForkInChild() {
  ResetTableLockInChild();
  SettleRoundTripsInChild();
  ForgetLinkWatcherAfterFork();
  __atomic_store_n(&g_owner_pid, static_cast<pid_t>(syscall(SYS_getpid)), __ATOMIC_RELAXED);
  pthread_sigmask(SIG_SETMASK, &t_mask_before_fork, nullptr);
}

bool LooksLikeChannel(int fd) {
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return false;
  int domain = 0, type = 0;
  socklen_t len = sizeof(int);
  if (Real().getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_UNIX) return false;
  len = sizeof(int);
  if (Real().getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_SEQPACKET) return false;
  struct sockaddr_storage peer;
  socklen_t peer_len = sizeof(peer);
  return Real().getpeername(fd, reinterpret_cast<struct sockaddr*>(&peer), &peer_len) == 0;
}

struct LinuxDirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

// Lists our open fds with getdents64 into a stack buffer: no allocation, as
// this runs before main.
void FindInheritedChannels() {
  int dir = static_cast<int>(syscall(SYS_openat, AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir < 0) return;
  char buf[4096];
  for (;;) {
    long n = syscall(SYS_getdents64, dir, buf, sizeof(buf));
    if (n <= 0) break;
    for (long off = 0; off < n;) {
      auto* d = reinterpret_cast<LinuxDirent64*>(buf + off);
      off += d->d_reclen;
      int fd = 0;
      const char* p = d->d_name;
      if (*p < '0' || *p > '9') continue;
      while (*p >= '0' && *p <= '9') fd = fd * 10 + (*p++ - '0');
      if (fd < 3 || fd >= kInheritedScanFds || fd == dir || IsCarriedEnd(fd)) continue;
      if (LooksLikeChannel(fd)) {
        MarkCandidate(fd);
        MarkEngaged();
      }
    }
  }
  Real().close(dir);
}

}  // namespace

void StartProcessLife() {
  __atomic_store_n(&g_owner_pid, static_cast<pid_t>(syscall(SYS_getpid)), __ATOMIC_RELAXED);
  pthread_atfork(PrepareFork, AfterForkInParent, AfterForkInChild);
  CaptureExecEnvironment();
  if (GetSettings().mode == Mode::kOff) return;
  LoadCarried();
  FindInheritedChannels();
  // The watcher attaches them (AttachInheritedChannels) without waiting for
  // the program to use them.
  if (g_have_candidates) EnsureLinkWatcher();
}

void AttachInheritedChannels() {
  for (int fd = 3; fd < kInheritedScanFds; ++fd) {
    if (MaybeInheritedChannel(fd)) AttachInheritedChannel(fd);
  }
}

pid_t Fork() {
  // Resolved here, not in real_calls: only this hook calls it.
  static pid_t (*real_fork)() = nullptr;
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, [] {
    void* fn = dlsym(RTLD_NEXT, "fork");
    if (fn == nullptr || fn == reinterpret_cast<void*>(&::fork)) {
      RawLog(kLogError).Str("cannot resolve fork").Emit();
      abort();
    }
    real_fork = reinterpret_cast<pid_t (*)()>(fn);
  });
  BeforeForkHook();
  pid_t pid = real_fork();
  int err = errno;
  AfterForkHook(pid);
  errno = err;
  return pid;
}

bool InVforkChild() {
  pid_t owner = __atomic_load_n(&g_owner_pid, __ATOMIC_RELAXED);
  return owner != 0 && static_cast<pid_t>(syscall(SYS_getpid)) != owner;
}

bool MaybeInheritedChannel(int fd) {
  if (__builtin_expect(!__atomic_load_n(&g_have_candidates, __ATOMIC_RELAXED), 1)) return false;
  if (static_cast<unsigned>(fd) >= kCandidateFds) return false;
  return (__atomic_load_n(&g_candidate_bits[fd / 8], __ATOMIC_RELAXED) >> (fd % 8)) & 1;
}

void ForgetInheritedChannel(int fd) {
  if (static_cast<unsigned>(fd) < kCandidateFds) {
    __atomic_fetch_and(&g_candidate_bits[fd / 8], static_cast<uint8_t>(~(1u << (fd % 8))), __ATOMIC_RELAXED);
  }
}

void NoteReceivedChannels(const struct msghdr* msg) {
  if (GetSettings().mode == Mode::kOff || InVforkChild()) return;
  struct msghdr copy = *msg;  // CMSG_NXTHDR reads only the control buffer and its length
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&copy); c != nullptr; c = CMSG_NXTHDR(&copy, c)) {
    if (!rp_cmsg_well_formed(&copy, c)) break;
    size_t count = rp_cmsg_fd_count(&copy, c);
    for (size_t i = 0; i < count; ++i) {
      int fd = rp_cmsg_fd(c, i);
      if (fd >= 0 && fd < kCandidateFds && LookupMember(fd) == nullptr && LooksLikeChannel(fd)) {
        MarkCandidate(fd);
        MarkEngaged();
      }
    }
  }
}

bool InheritedChannelSurvivesExec() {
  if (!__atomic_load_n(&g_have_candidates, __ATOMIC_RELAXED)) return false;
  for (int fd = 0; fd < kCandidateFds; ++fd) {
    if (!MaybeInheritedChannel(fd)) continue;
    int flags = Real().fcntl(fd, F_GETFD);
    if (flags >= 0 && !(flags & FD_CLOEXEC)) return true;
  }
  return false;
}

}  // namespace reuseport::shim
