#include "member_attach.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "broker_link.h"
#include "exec_carry.h"
#include "member_ring.h"
#include "link_watcher.h"
#include "raw_log.h"
#include "real_calls.h"
#include "reuseport/address_codec.h"
#include "reuseport/protocol.h"
#include "socket_options.h"

namespace reuseport::shim {

namespace {

// Sends ATTACH for `channel` on a new link. On success returns the link and
// leaves the reply (fds [channel_peer, group socket]) in *reply. On failure
// *unreachable says whether no broker answered (rather than "not a member").
int Attach(int channel, BrokerReply* reply, bool* unreachable = nullptr) {
  if (unreachable != nullptr) *unreachable = false;
  int link = ConnectBroker();
  if (link < 0) {
    WarnBrokerUnreachable(errno);
    if (unreachable != nullptr) *unreachable = true;
    return -1;
  }
  int call = CallBroker(link, RP_OP_ATTACH, nullptr, 0, &channel, 1, reply);
  if (call != 0 && unreachable != nullptr) *unreachable = true;
  bool ring = reply->fd_count == 3 && (reply->payload.member.flags & RP_MEMBER_RING);
  if (call != 0 || reply->header.status != 0 || reply->fd_count != (ring ? 3 : 2) ||
      reply->payload_size != sizeof(rp_member_reply)) {
    CloseReplyFds(reply);
    Real().close(link);
    return -1;
  }
  return link;
}

struct MemberFacts {
  uint8_t protocol;
  rp_address bound;
  uint8_t v6only;
  uint64_t member_id;
  uint64_t group_id;
};

// Makes m, claimed for the program's fd, the member the facts describe, with
// its private ends (adopted; link and ring may be -1), and settles it.
void Settle(Member* m, int fd, const MemberFacts& facts, int link, int peer, int group, int ring) {
  m->protocol = facts.protocol;
  m->family = static_cast<uint8_t>(facts.bound.family);
  m->v6only = facts.v6only;
  m->member_id = facts.member_id;
  m->group_id = facts.group_id;
  m->bound_len = rp_address_to_sockaddr(&facts.bound, m->family, &m->bound);
  m->link_fd = AdoptPrivateFd(link, m);
  m->link_pid = static_cast<pid_t>(syscall(SYS_getpid));
  m->channel_peer_fd = AdoptPrivateFd(peer, m);
  m->group_fd = AdoptPrivateFd(group, m);
  if (ring >= 0) AdoptRing(m, ring);
  int domain = 0;
  socklen_t len = sizeof(domain);
  Real().getsockopt(m->group_fd, SOL_SOCKET, SO_DOMAIN, &domain, &len);
  m->group_family = static_cast<uint8_t>(domain);
  // The options the program set in its previous image are gone with it; start
  // from the group socket's, as a fresh listener would.
  bool tcp = m->protocol == RP_PROTO_TCP;
  m->holder_fd = AdoptPrivateFd(
      Real().socket(m->family, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, tcp ? IPPROTO_TCP : IPPROTO_UDP), m);
  if (tcp) {
    ReadInheritedOptions(m->group_fd, m->family, m->inherited.listener);
    ReadInheritedOptions(m->group_fd, m->family, m->inherited.wanted);
    UpdateDifferMask(&m->inherited);
  }
  MirrorInheritance(m, fd);
  __atomic_store_n(&m->state, tcp ? MemberState::kListening : MemberState::kDatagram, __ATOMIC_RELEASE);
  ForgetInheritedChannel(fd);
  EnsureLinkWatcher();
}

}  // namespace

Member* AttachInheritedChannel(int fd) {
  if (InVforkChild()) return nullptr;
  TableLock lock;
  if (Member* m = LookupMember(fd)) {
    lock.Release();
    return m->state == MemberState::kAttaching ? WaitForAttach(fd) : m;
  }
  if (!MaybeInheritedChannel(fd)) return nullptr;
  // Claim the fd for the round trip: a close() meanwhile abandons the claim.
  // The fd stays a candidate until it is mapped for good or given up, so a
  // lock-free lookup always finds one or the other.
  Member* m = AllocateMember();
  if (m == nullptr) return nullptr;
  m->state = MemberState::kAttaching;
  m->fd_refs = 1;
  if (!MapFd(fd, m)) {
    ReleaseMember(m);
    return nullptr;
  }
  BeginRoundTrip(m);
  lock.Release();
  BrokerReply reply;
  bool unreachable = false;
  int link = Attach(fd, &reply, &unreachable);
  lock.Acquire();
  if (!EndRoundTrip(m)) {  // the program closed fd while we asked
    ForgetInheritedChannel(fd);
    CloseCarried(fd);
    CloseReplyFds(&reply);
    if (link >= 0) Real().close(link);
    return nullptr;
  }
  if (link < 0) {
    CarriedMember carried;
    if (unreachable && TakeCarried(fd, &carried)) {
      // No broker, but the old image passed on what proves the member: it is
      // one now, and the link watcher rejoins the next broker with it.
      MemberFacts facts = {carried.protocol, carried.bound, carried.v6only, carried.member_key, 0};
      Settle(m, fd, facts, -1, carried.peer, carried.group, carried.ring);
      m->backlog = carried.backlog;
      RawLog(kLogInfo).Str("fd ").Int(fd).Str(" inherited as member ").Uint(m->member_id)
          .Str(" with no broker to ask; it rejoins the next one").Emit();
      return m;
    }
    // Not a member's channel: an ordinary fd of the program's. No broker:
    // it stays a candidate, asked for again later (the link watcher does,
    // or the next use).
    UnmapFd(fd);
    ReleaseMember(m);
    if (!unreachable) {
      ForgetInheritedChannel(fd);
      CloseCarried(fd);
    }
    return nullptr;
  }
  CloseCarried(fd);  // the broker gave fresh copies
  const rp_member_reply& r = reply.payload.member;
  MemberFacts facts = {r.protocol, r.bound, r.v6only, r.member_id, r.group_id};
  Settle(m, fd, facts, link, reply.fds[0], reply.fds[1], reply.fd_count == 3 ? reply.fds[2] : -1);
  reply.fd_count = 0;
  RawLog(kLogInfo).Str("fd ").Int(fd).Str(" inherited as member ").Uint(m->member_id).Str(" of group ").Uint(m->group_id).Emit();
  return m;
}

Member* WaitForAttach(int fd) {
  TableLock lock;
  Member* m = LookupMember(fd);
  if (m != nullptr && m->state == MemberState::kAttaching && m->busy) {
    WaitWhileBusy(m, lock);
    m = LookupMember(fd);
  }
  return m != nullptr && m->state != MemberState::kAttaching ? m : nullptr;
}

int OpenOwnLink(int channel) {
  BrokerReply reply;
  int link = Attach(channel, &reply);
  CloseReplyFds(&reply);  // we hold the channel peer and group socket already
  return link;
}

void InstallOwnLink(Member* m, int link, pid_t me) {
  // The parent's link stays open in the parent; ours replaces our copy of it.
  int old = m->link_fd;
  m->link_fd = AdoptPrivateFd(link, m);
  m->link_pid = me;
  if (old >= 0) {
    UnmarkPrivateFd(old);
    Real().close(old);
  }
}

void MirrorInheritance(Member* m, int program_fd) {
  int flags = Real().fcntl(program_fd, F_GETFD);
  if (flags < 0 || m->link_fd < 0) return;
  int link_flags = Real().fcntl(m->link_fd, F_GETFD);
  if (link_flags < 0) return;
  int want = (link_flags & ~FD_CLOEXEC) | (flags & FD_CLOEXEC);
  if (want != link_flags) Real().fcntl(m->link_fd, F_SETFD, want);
}

}  // namespace reuseport::shim
