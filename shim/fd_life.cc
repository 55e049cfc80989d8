// close, dup*, fcntl, ioctl, close_range, closefrom: keeping the fd table true
// while the program copies and closes its sockets, and shielding the shim's own
// fds (links, channel ends, group sockets) from programs that close or dup2
// over fds they do not know.
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/ioctl.h>
#include <string.h>
#include <unistd.h>

#include "exec_carry.h"
#include "member_attach.h"
#include "member_table.h"
#include "presented_family.h"
#include "process_life.h"
#include "raw_log.h"
#include "real_calls.h"
#include "shim.h"

namespace reuseport::shim {

namespace {

// Moves the shim's private fd `fd` to another number so the program can take
// this one (the program's dup2 then closes the old number). Requires TableLock.
bool EvacuatePrivateFd(int fd) {
  int moved = Real().fcntl(fd, F_DUPFD_CLOEXEC, fd + 1);
  if (moved < 0) return false;
  ReassignPrivateFd(fd, moved);
  CarriedEndMoved(fd, moved);
  return true;
}

void TrackDuplicate(int old_fd, int new_fd) {
  Member* m = LookupMemberOrAttach(old_fd);
  if (m == nullptr || new_fd < 0 || InVforkChild()) return;
  TableLock lock;
  if (LookupMember(old_fd) != m) return;
  if (MapFd(new_fd, m)) {
    ++m->fd_refs;
    MirrorInheritance(m, new_fd);
  } else {
    static int warned;
    if (FirstTime(&warned)) RawLog(kLogWarn).Str("duplicate fd ").Int(new_fd).Str(" of a shared socket is above 65535; it is not shared").Emit();
  }
}

// Closes [first, last] with the real close_range, or one by one where the
// kernel lacks it (before 5.9).
int CloseSpan(unsigned int first, unsigned int last, int flags) {
  if (first > last) return 0;
  if (Real().close_range != nullptr) {
    int r = Real().close_range(first, last, flags);
    if (r == 0 || errno != ENOSYS) return r;
  }
  if (flags & CLOSE_RANGE_CLOEXEC) {
    errno = ENOSYS;
    return -1;
  }
  unsigned int end = last < static_cast<unsigned int>(kMaxTrackedFd) ? last : kMaxTrackedFd - 1;
  for (unsigned int fd = first; fd <= end; ++fd) Real().close(static_cast<int>(fd));
  return 0;
}

}  // namespace

int Close(int fd) {
  if (!ShimEngaged()) return Real().close(fd);
  if (__builtin_expect(IsPrivateFd(fd), 0)) {
    if (InVforkChild()) return Real().close(fd);  // its own fd table; our memory is the parent's
    errno = EBADF;  // not open, as far as the program can know
    return -1;
  }
  Member* m = LookupMember(fd);
  if (m == nullptr) {
    if (__builtin_expect(MaybeInheritedChannel(fd), 0)) {
      ForgetInheritedChannel(fd);
      if (!InVforkChild()) {
        TableLock lock;
        CloseCarried(fd);  // what came with it across exec goes with it
      }
    }
    ForgetPresentedFamily(fd);  // before the number can be reused
    return Real().close(fd);
  }
  if (InVforkChild()) return Real().close(fd);
  TableLock lock;
  m = LookupMember(fd);
  if (m == nullptr) return Real().close(fd);
  // Unmap before closing: once closed, the number can be handed to a new fd by
  // another thread, which must not be taken for this member.
  UnmapFd(fd);
  int r = Real().close(fd);
  int err = errno;
  DropReference(m);
  errno = err;
  return r;
}

int Dup(int fd) {
  int new_fd = Real().dup(fd);
  if (new_fd >= 0 && ShimEngaged()) CopyPresentedFamily(fd, new_fd);
  if (new_fd >= 0) TrackDuplicate(fd, new_fd);
  return new_fd;
}

int Dup3(int old_fd, int new_fd, int flags, bool is_dup2) {
  // InVforkChild() is a getpid(): asked only when an fd of ours is involved.
  if (old_fd == new_fd ||
      (LookupMemberOrAttach(old_fd) == nullptr && LookupMember(new_fd) == nullptr && !IsPrivateFd(new_fd)) ||
      InVforkChild()) {
    int r = is_dup2 ? Real().dup2(old_fd, new_fd) : Real().dup3(old_fd, new_fd, flags);
    if (r >= 0 && old_fd != new_fd && ShimEngaged()) CopyPresentedFamily(old_fd, new_fd);
    return r;
  }
  TableLock lock;
  bool evacuated = IsPrivateFd(new_fd) && EvacuatePrivateFd(new_fd);
  Member* replaced = LookupMember(new_fd);
  Member* source = LookupMember(old_fd);
  int r = is_dup2 ? Real().dup2(old_fd, new_fd) : Real().dup3(old_fd, new_fd, flags);
  if (r < 0) {
    int err = errno;
    if (evacuated) Real().close(new_fd);  // our old copy at that number
    errno = err;
    return r;
  }
  if (replaced != nullptr) DropFdReference(new_fd, replaced);
  if (source != nullptr && MapFd(new_fd, source)) {
    ++source->fd_refs;
    MirrorInheritance(source, new_fd);
  }
  return r;
}

int Fcntl(int fd, int cmd, void* arg, bool is_fcntl64) {
  auto real = is_fcntl64 && Real().fcntl64 != nullptr ? Real().fcntl64 : Real().fcntl;
  int r = real(fd, cmd, arg);
  if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)) {
    if (ShimEngaged()) CopyPresentedFamily(fd, r);
    TrackDuplicate(fd, r);
  }
  if (r >= 0 && cmd == F_SETFD) {
    if (Member* m = LookupMember(fd); m != nullptr && !InVforkChild()) MirrorInheritance(m, fd);
  }
  return r;
}

int Ioctl(int fd, unsigned long request, void* arg) {
  Member* m = LookupMemberOrAttach(fd);
  if (__builtin_expect(m == nullptr, 1) || request != FIONREAD || m->state != MemberState::kDatagram) {
    return Real().ioctl(fd, request, arg);
  }
  int size = 0;
  if (NextDatagramSize(fd, &size) != 0) return -1;
  if (arg == nullptr) {
    errno = EFAULT;
    return -1;
  }
  memcpy(arg, &size, sizeof(size));
  return 0;
}

int CloseRange(unsigned int first, unsigned int last, int flags) {
  if (first > last) {
    errno = EINVAL;
    return -1;
  }
  if (!TablesActive() || InVforkChild()) return CloseSpan(first, last, flags);
  TableLock lock;
  // Close around the shim's own fds; forget members whose fds go.
  unsigned int span_start = first;
  unsigned int tracked_end = last < static_cast<unsigned int>(kMaxTrackedFd) ? last : kMaxTrackedFd - 1;
  for (unsigned int fd = first; fd <= tracked_end; ++fd) {
    int ifd = static_cast<int>(fd);
    if (IsPrivateFd(ifd)) {
      if (fd > span_start && CloseSpan(span_start, fd - 1, flags) != 0) return -1;
      span_start = fd + 1;
    } else if (!(flags & CLOSE_RANGE_CLOEXEC)) {
      ForgetPresentedFamily(ifd);
      if (Member* m = LookupMember(ifd)) DropFdReference(ifd, m);
    }
  }
  if (span_start <= last && span_start >= first) return CloseSpan(span_start, last, flags);
  return 0;
}

void Closefrom(int lowest) {
  if (lowest < 0) lowest = 0;
  CloseRange(static_cast<unsigned int>(lowest), ~0U, 0);
}

}  // namespace reuseport::shim
