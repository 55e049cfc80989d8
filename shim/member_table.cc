#include "member_table.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/futex.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "member_ring.h"
#include "presented_family.h"
#include "raw_log.h"
#include "real_calls.h"

namespace reuseport::shim {

namespace {

// Slot values: 0 = not ours; 1..kMaxMembers = a program fd of member (value-1);
// kPrivateBit|index = one of the shim's private fds belonging to member index.
constexpr uint16_t kPrivateBit = 0x8000;
static_assert(kMaxMembers < kPrivateBit, "member index must fit below the private bit");
// kPrivateBit|kUnowned: private, but no member's yet (carried across exec, exec_carry.h).
constexpr uint16_t kUnowned = kPrivateBit - 1;
static_assert(kMaxMembers < kUnowned, "kUnowned must not be a member index");

uint16_t* g_slots = nullptr;     // kMaxTrackedFd entries, mapped on first use
Member* g_members = nullptr;     // kMaxMembers entries, mapped on first use
pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
int g_private_fd_base = -1;

bool EnsureTables() {
  if (g_slots != nullptr) return true;
  // Anonymous mappings: untouched pages cost nothing, and no malloc is involved.
  void* slots = mmap(nullptr, sizeof(uint16_t) * kMaxTrackedFd, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (slots == MAP_FAILED) return false;
  void* members = mmap(nullptr, sizeof(Member) * kMaxMembers, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (members == MAP_FAILED) {
    munmap(slots, sizeof(uint16_t) * kMaxTrackedFd);
    return false;
  }
  g_members = static_cast<Member*>(members);
  __atomic_store_n(&g_slots, static_cast<uint16_t*>(slots), __ATOMIC_RELEASE);
  MarkEngaged();
  return true;
}

void CloseIfOpen(int* fd) {
  if (*fd >= 0) {
    UnmarkPrivateFd(*fd);
    Real().close(*fd);
    *fd = -1;
  }
}

}  // namespace

uint8_t g_engaged = 0;

void MarkEngaged() { __atomic_store_n(&g_engaged, 1, __ATOMIC_RELEASE); }

Member* LookupMember(int fd) {
  uint16_t* slots = __atomic_load_n(&g_slots, __ATOMIC_ACQUIRE);
  if (__builtin_expect(slots == nullptr, 1) || static_cast<unsigned>(fd) >= kMaxTrackedFd) return nullptr;
  // Acquire: the member was filled in before MapFd published it, possibly by
  // another thread (the link watcher attaching an inherited channel).
  uint16_t v = __atomic_load_n(&slots[fd], __ATOMIC_ACQUIRE);
  if (v == 0 || (v & kPrivateBit)) return nullptr;
  return &g_members[v - 1];
}

bool IsPrivateFd(int fd) {
  uint16_t* slots = __atomic_load_n(&g_slots, __ATOMIC_ACQUIRE);
  if (slots == nullptr || static_cast<unsigned>(fd) >= kMaxTrackedFd) return false;
  return (__atomic_load_n(&slots[fd], __ATOMIC_RELAXED) & kPrivateBit) != 0;
}

TableLock::TableLock() { Acquire(); }

TableLock::~TableLock() {
  if (held_) Release();
}

void TableLock::Acquire() {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &saved_);
  pthread_mutex_lock(&g_lock);
  held_ = true;
}

void TableLock::Release() {
  held_ = false;
  pthread_mutex_unlock(&g_lock);
  pthread_sigmask(SIG_SETMASK, &saved_, nullptr);
}

void BeginRoundTrip(Member* m) { __atomic_store_n(&m->busy, 1u, __ATOMIC_RELEASE); }

bool EndRoundTrip(Member* m) {
  __atomic_store_n(&m->busy, 0u, __ATOMIC_RELEASE);
  syscall(SYS_futex, &m->busy, FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr, nullptr, 0);
  if (!m->abandoned) return true;
  ReleaseMember(m);
  return false;
}

void WaitWhileBusy(Member* m, TableLock& lock) {
  // Longer than any round trip (connect 1 s, then up to two calls of 3 s).
  constexpr int kMaxWaitMs = 8000;
  lock.Release();
  for (int waited = 0; waited < kMaxWaitMs && __atomic_load_n(&m->busy, __ATOMIC_ACQUIRE) != 0; waited += 100) {
    struct timespec slice = {0, 100 * 1000 * 1000};
    syscall(SYS_futex, &m->busy, FUTEX_WAIT_PRIVATE, 1u, &slice, nullptr, 0);
  }
  lock.Acquire();
}

Member* AllocateMember() {
  if (!EnsureTables()) return nullptr;
  for (int i = 0; i < kMaxMembers; ++i) {
    Member* m = &g_members[i];
    if (m->state == MemberState::kFree) {
      memset(m, 0, sizeof(*m));  // busy and abandoned too
      m->link_fd = m->channel_fd = m->channel_peer_fd = m->group_fd = m->holder_fd = m->ring_fd = -1;
      m->state = MemberState::kPending;
      return m;
    }
  }
  static int warned;
  if (FirstTime(&warned)) RawLog(kLogWarn).Str("more than 4096 shared sockets in one process; the rest are not shared").Emit();
  return nullptr;
}

void ReleaseMember(Member* m) {
  DropRing(m);
  CloseIfOpen(&m->link_fd);
  CloseIfOpen(&m->channel_fd);
  CloseIfOpen(&m->channel_peer_fd);
  CloseIfOpen(&m->group_fd);
  CloseIfOpen(&m->holder_fd);
  m->fd_refs = 0;
  m->abandoned = 0;
  __atomic_store_n(&m->state, MemberState::kFree, __ATOMIC_RELEASE);
}

int MemberIndex(const Member* m) { return static_cast<int>(m - g_members); }

Member* MemberAt(int index) {
  if (g_members == nullptr || index < 0 || index >= kMaxMembers) return nullptr;
  return &g_members[index];
}

int FindProgramFd(const Member* m) {
  if (g_slots == nullptr) return -1;
  uint16_t want = static_cast<uint16_t>(MemberIndex(m) + 1);
  for (int fd = 0; fd < kMaxTrackedFd; ++fd) {
    if (g_slots[fd] == want) return fd;
  }
  return -1;
}

bool ProgramFdSurvivesExec() {
  uint16_t* slots = __atomic_load_n(&g_slots, __ATOMIC_ACQUIRE);
  if (slots == nullptr) return false;
  for (int fd = 0; fd < kMaxTrackedFd; ++fd) {
    uint16_t v = __atomic_load_n(&slots[fd], __ATOMIC_RELAXED);
    if (v == 0 || (v & kPrivateBit)) continue;
    int flags = Real().fcntl(fd, F_GETFD);
    if (flags >= 0 && !(flags & FD_CLOEXEC)) return true;
  }
  return false;
}

int FindProgramFdPassingOn(const Member* m) {
  if (g_slots == nullptr) return -1;
  uint16_t want = static_cast<uint16_t>(MemberIndex(m) + 1);
  for (int fd = 0; fd < kMaxTrackedFd; ++fd) {
    if (__atomic_load_n(&g_slots[fd], __ATOMIC_RELAXED) != want) continue;
    int flags = Real().fcntl(fd, F_GETFD);
    if (flags >= 0 && !(flags & FD_CLOEXEC)) return fd;
  }
  return -1;
}

bool MapFd(int fd, Member* m) {
  if (!EnsureTables() || static_cast<unsigned>(fd) >= kMaxTrackedFd) return false;
  __atomic_store_n(&g_slots[fd], static_cast<uint16_t>(MemberIndex(m) + 1), __ATOMIC_RELEASE);
  return true;
}

void UnmapFd(int fd) {
  if (g_slots != nullptr && static_cast<unsigned>(fd) < kMaxTrackedFd) __atomic_store_n(&g_slots[fd], 0, __ATOMIC_RELEASE);
}

void MarkPrivateFd(int fd, Member* m) {
  if (EnsureTables() && static_cast<unsigned>(fd) < kMaxTrackedFd) {
    __atomic_store_n(&g_slots[fd], static_cast<uint16_t>(kPrivateBit | MemberIndex(m)), __ATOMIC_RELEASE);
  }
}

void UnmarkPrivateFd(int fd) {
  if (g_slots != nullptr && static_cast<unsigned>(fd) < kMaxTrackedFd && (g_slots[fd] & kPrivateBit)) {
    __atomic_store_n(&g_slots[fd], 0, __ATOMIC_RELEASE);
  }
}

void MarkUnownedPrivateFd(int fd) {
  if (EnsureTables() && static_cast<unsigned>(fd) < kMaxTrackedFd) {
    __atomic_store_n(&g_slots[fd], static_cast<uint16_t>(kPrivateBit | kUnowned), __ATOMIC_RELEASE);
  }
}

void ReassignPrivateFd(int old_fd, int new_fd) {
  if (!IsPrivateFd(old_fd)) return;
  uint16_t owner = g_slots[old_fd] & ~kPrivateBit;
  if (owner == kUnowned) {  // the caller tells exec_carry.h
    UnmarkPrivateFd(old_fd);
    MarkUnownedPrivateFd(new_fd);
    return;
  }
  Member* m = &g_members[owner];
  int* fields[] = {&m->link_fd, &m->channel_fd, &m->channel_peer_fd, &m->group_fd, &m->holder_fd};
  for (int* field : fields) {
    if (*field == old_fd) *field = new_fd;
  }
  UnmarkPrivateFd(old_fd);
  MarkPrivateFd(new_fd, m);
}

bool TablesActive() { return __atomic_load_n(&g_slots, __ATOMIC_ACQUIRE) != nullptr; }

int AdoptPrivateFd(int fd, Member* m) {
  if (fd < 0) return fd;
  if (g_private_fd_base < 0) {
    // High enough to stay out of the way of programs that expect the lowest
    // free numbers (daemons reopening 0-2), low enough to fit the fd limit.
    struct rlimit rl {};
    rlim_t limit = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
    g_private_fd_base = limit > 2048 ? 1024 : static_cast<int>(limit / 2);
  }
  int moved = Real().fcntl(fd, F_DUPFD_CLOEXEC, g_private_fd_base);
  if (moved < 0) moved = Real().fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (moved >= 0) {
    Real().close(fd);
    fd = moved;
  }
  MarkPrivateFd(fd, m);
  return fd;
}

void DropFdReference(int fd, Member* m) {
  UnmapFd(fd);
  DropReference(m);
}

void DropReference(Member* m) {
  if (--m->fd_refs > 0) return;
  if (__atomic_load_n(&m->busy, __ATOMIC_ACQUIRE)) {
    m->abandoned = 1;  // the talking thread still uses its fds; it releases it
    return;
  }
  ReleaseMember(m);
}

void ForgetStaleFd(int fd) {
  if (fd < 0 || !TablesActive()) return;
  ForgetPresentedFamily(fd);  // a new socket at the number of one closed behind our back
  if (LookupMember(fd) == nullptr && !IsPrivateFd(fd)) return;
  TableLock lock;
  if (IsPrivateFd(fd)) {
    // One of our fds was closed behind our back (raw syscall): stop shielding
    // the number, and never close it later on the member's behalf.
    ReassignPrivateFd(fd, -1);
    return;
  }
  if (Member* m = LookupMember(fd)) DropFdReference(fd, m);
}

void LockTableForFork() { pthread_mutex_lock(&g_lock); }
void UnlockTableAfterFork() { pthread_mutex_unlock(&g_lock); }
void ResetTableLockInChild() { pthread_mutex_init(&g_lock, nullptr); }

}  // namespace reuseport::shim
