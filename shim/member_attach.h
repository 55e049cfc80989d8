// Links for members this process did not create: a channel inherited across
// exec, or a member whose link the parent opened before fork(). Holding the
// member's end of the channel is the proof the broker asks for (RP_OP_ATTACH).
#ifndef REUSEPORT_SHIM_MEMBER_ATTACH_H_
#define REUSEPORT_SHIM_MEMBER_ATTACH_H_

#include "member_table.h"
#include "process_life.h"

namespace reuseport::shim {

// Makes fd, inherited across exec, a member again; null if the broker does not
// know it (then it is an ordinary socket of the program's).
Member* AttachInheritedChannel(int fd);

// The member of fd once another thread has finished recognising it.
Member* WaitForAttach(int fd);

// The member of fd, recognising an inherited channel on first use. The hot
// path of the hooks that can meet one.
inline Member* LookupMemberOrAttach(int fd) {
  if (!ShimEngaged()) return nullptr;
  Member* m = LookupMember(fd);
  if (__builtin_expect(m != nullptr, 0)) {
    if (__builtin_expect(__atomic_load_n(&m->state, __ATOMIC_ACQUIRE) == MemberState::kAttaching, 0)) {
      return WaitForAttach(fd);
    }
    return m;
  }
  if (__builtin_expect(MaybeInheritedChannel(fd), 0)) return AttachInheritedChannel(fd);
  return nullptr;
}

// A link of this process's own for the member whose channel end is `channel`
// (RP_OP_ATTACH): after fork, so that replies cannot go to another process,
// and so the broker knows every process that holds the member. A round trip:
// call it without TableLock. Returns the link or -1.
int OpenOwnLink(int channel);
// Makes `link` m's link in place of the parent's copy. Requires TableLock.
void InstallOwnLink(Member* m, int link, pid_t me);

// Makes m's link inherited across exec exactly when the program's fd is, so a
// listener handed to a new program image stays a member.
void MirrorInheritance(Member* m, int program_fd);

}  // namespace reuseport::shim

#endif  // REUSEPORT_SHIM_MEMBER_ATTACH_H_
