#include "dispatcher.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>

#include "absl/strings/str_format.h"
#include "batch_io.h"
#include "log.h"
#include "reuseport/address_codec.h"
#include "ring_fault_guard.h"
#include "socket_facts.h"
#include "wire.h"

namespace reuseport::broker {

namespace {

constexpr size_t kDatagramPrefix = sizeof(rp_header) + sizeof(rp_datagram);
static_assert(kDatagramPrefix == 96, "channel record prefix");
constexpr size_t kUdpSlot = kDatagramPrefix + 65536;
constexpr int kUdpBatch = 32;
constexpr int kAcceptBatch = 64;

// Sets a socket buffer even above the sysctl maximum when we may (root).
void SetBuffer(int fd, int force_option, int option, int bytes) {
  int half = bytes / 2;  // the kernel doubles what it is given
  if (setsockopt(fd, SOL_SOCKET, force_option, &half, sizeof(half)) != 0) {
    setsockopt(fd, SOL_SOCKET, option, &half, sizeof(half));
  }
}

void SetInt(int fd, int level, int name, int value) { setsockopt(fd, level, name, &value, sizeof(value)); }

// Takes one record, unconsumed by the member, off its end of the channel without blocking.
// Returns the record's size; 0 or less when nothing is left.
ssize_t TakeUnconsumed(int member_end, char* buffer, size_t size, ExtractedFds* fds) {
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * RP_MAX_FDS)];
  for (;;) {
    struct iovec iov = {buffer, size};
    struct msghdr msg {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = recvmsg(member_end, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n >= 0) *fds = ExtractFds(&msg, RP_MAX_FDS);
    return n;
  }
}

}  // namespace

Dispatcher::Dispatcher(EventLoop& loop, Registry& registry, const DispatchOptions& options, const FlowKey& flow_key,
                       const Policy& policy)
    : loop_(loop), registry_(registry), options_(options), flow_key_(flow_key), policy_(policy) {}

void Dispatcher::CalibrateChannels() {
  // A queued record costs its truesize, not its length; measure it rather than
  // guess, so member_window means connections.
  int per_record = 1024;
  int sv[2];
  int p[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0) {
    if (pipe2(p, O_CLOEXEC) == 0) {
      constexpr int kProbe = 16;
      rp_header h = MakeHeader(RP_OP_CONNECTION, sizeof(rp_connection), 0);
      rp_connection c{};
      int sent = 0;
      for (int i = 0; i < kProbe; ++i) {
        if (SendRecord(sv[0], h, &c, sizeof(c), nullptr, 0, {p[0]}, MSG_DONTWAIT) == 0) ++sent;
      }
      int queued = 0;
      if (sent > 0 && ioctl(sv[0], SIOCOUTQ, &queued) == 0 && queued > 0) per_record = queued / sent;
      close(p[0]);
      close(p[1]);
    }
    close(sv[0]);
    close(sv[1]);
  }
  tcp_channel_sndbuf_ = std::max(per_record * options_.member_window, 4096);
  Log(Severity::kDebug, "channel record costs %d bytes; TCP channel buffer %d bytes for %d connections", per_record,
      tcp_channel_sndbuf_, options_.member_window);
}

void Dispatcher::PrepareChannel(int channel_fd, int protocol, int64_t udp_bytes, bool ring) const {
  int flags = fcntl(channel_fd, F_GETFL);
  fcntl(channel_fd, F_SETFL, flags | O_NONBLOCK);
  // With a ring the channel carries doorbells only: a default buffer does.
  int bytes = protocol == RP_PROTO_TCP ? tcp_channel_sndbuf_ : ring ? 0 : static_cast<int>(udp_bytes);
  if (bytes > 0) SetBuffer(channel_fd, SO_SNDBUFFORCE, SO_SNDBUF, bytes);
}

absl::Status Dispatcher::StartUdp(RealSocket* real) {
  int fd = real->fd.get();
  // The destination of each datagram routes it to its group. An IPv6 socket
  // that also receives IPv4 (dual-stack, or ::ffff:...) needs IP_PKTINFO too:
  // Linux 3.2 gives IPv4 datagrams there only IPPROTO_IP control messages (later
  // kernels add a v4-mapped IPV6_PKTINFO as well).
  SetInt(fd, IPPROTO_IP, IP_PKTINFO, 1);
  if (real->address.family == AF_INET6) SetInt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1);
  SetInt(fd, SOL_SOCKET, SO_RXQ_OVFL, 1);
  // The group's socket takes the load of all its members' sockets on a kernel
  // with SO_REUSEPORT, and the broker is one more process to schedule: give
  // it a member queue's worth of buffer to ride out the moments it waits.
  int current = 0;
  socklen_t len = sizeof(current);
  getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &current, &len);
  if (current < options_.udp_channel_bytes) SetBuffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, options_.udp_channel_bytes);
  real->watch = loop_.Add(fd, EPOLLIN, [this, real](uint32_t) { OnUdpReadable(real); });
  if (real->watch == nullptr) return absl::InternalError("cannot watch UDP socket");
  return absl::OkStatus();
}

int Dispatcher::Listen(RealSocket* real, int backlog) {
  if (backlog <= 0) backlog = 128;
  if (real->listening && backlog <= real->backlog) return 0;
  // Connections accepted from it inherit SO_REUSEADDR, so that they (held by
  // members, or queued) never keep a wider socket of the port from being bound
  // later (ReleaseForWiderSocket). A listening socket conflicts with any
  // overlapping bind whatever its SO_REUSEADDR, so nothing else changes.
  SetInt(real->fd.get(), SOL_SOCKET, SO_REUSEADDR, 1);
  if (listen(real->fd.get(), backlog) != 0) return errno;
  real->backlog = std::max(backlog, real->backlog);
  if (!real->listening) {
    real->listening = true;
    int flags = fcntl(real->fd.get(), F_GETFL);
    fcntl(real->fd.get(), F_SETFL, flags | O_NONBLOCK);
    real->watch = loop_.Add(real->fd.get(), EPOLLIN, [this, real](uint32_t) { OnTcpReadable(real); });
    if (real->watch == nullptr) return ENOMEM;
  }
  return 0;
}

void Dispatcher::ForgetRealSocket(RealSocket* real) {
  loop_.Remove(real->watch);
  real->watch = nullptr;
  waiting_for_room_.erase(std::remove(waiting_for_room_.begin(), waiting_for_room_.end(), real), waiting_for_room_.end());
}

void Dispatcher::ReleaseForWiderSocket(const std::vector<RealSocket*>& narrower) {
  for (RealSocket* r : narrower) {
    SetInt(r->fd.get(), SOL_SOCKET, SO_REUSEADDR, 1);
    if (r->protocol != RP_PROTO_TCP || !r->listening) continue;
    DrainBacklog(r);
    // A listener that stops listening resets what is still queued: drained
    // just above, so only a connection completing in between is lost.
    shutdown(r->fd.get(), SHUT_RD);
  }
}

void Dispatcher::RestoreNarrowerSockets(const std::vector<RealSocket*>& narrower) {
  for (RealSocket* r : narrower) {
    if (r->protocol == RP_PROTO_TCP && r->listening && listen(r->fd.get(), r->backlog) != 0) {
      Log(Severity::kError, "cannot listen on %s again: %s", FormatAddress(r->address), strerror(errno));
    }
    if (r->protocol == RP_PROTO_UDP) SetInt(r->fd.get(), SOL_SOCKET, SO_REUSEADDR, 0);
  }
}

void Dispatcher::Supersede(const std::vector<RealSocket*>& narrower, RealSocket* wider) {
  int backlog = 0;
  bool listening = false;
  for (RealSocket* r : narrower) {
    if (r->protocol != RP_PROTO_TCP) continue;
    listening |= r->listening;
    backlog = std::max(backlog, r->backlog);
  }
  // listen() checks the port again: SO_REUSEADDR stays on until it is done.
  if (listening) {
    if (int err = Listen(wider, backlog); err != 0) {
      Log(Severity::kError, "listen on %s: %s", FormatAddress(wider->address), strerror(err));
    }
  }
  // UDP sockets bound with SO_REUSEADDR would let any later socket with it
  // share their addresses: off again once bound. (TCP listeners keep it; see Listen.)
  if (wider->protocol == RP_PROTO_UDP) SetInt(wider->fd.get(), SOL_SOCKET, SO_REUSEADDR, 0);
  for (RealSocket* r : narrower) {
    if (r->protocol != RP_PROTO_TCP) {
      SetInt(r->fd.get(), SOL_SOCKET, SO_REUSEADDR, 0);
      continue;
    }
    ForgetRealSocket(r);
    if (std::unique_ptr<RealSocket> released = registry_.Rehome(r, wider)) {
      Log(Severity::kInfo, "tcp %s now served through %s", FormatAddress(released->address), FormatAddress(wider->address));
    }
  }
}

void Dispatcher::DrainBacklog(RealSocket* real) {
  bool was_paused = real->paused;
  real->paused = false;
  // Bounded: a backlog holds at most somaxconn connections.
  for (int batch = 0; batch < 1024; ++batch) {
    int before = static_cast<int>(totals_.connections_accepted);
    OnTcpReadable(real);
    if (static_cast<int>(totals_.connections_accepted) == before) break;
  }
  real->paused = real->paused || was_paused;
}

void Dispatcher::AddMember(Group* group, std::unique_ptr<Member> member) {
  Member* m = member.get();
  m->group = group;
  m->joined_ms = EventLoop::NowMs();
  if (group->protocol == RP_PROTO_UDP) m->listening = true;
  m->channel_watch = loop_.Add(m->channel.get(), 0, [this, m](uint32_t events) {
    if (events & EPOLLOUT) OnChannelWritable(m);
  });
  registry_.MemberAdded(*m);
  group->members.push_back(std::move(member));
  ++group->members_joined;
  group->RebuildTable();
}

void Dispatcher::SetListening(Member* member) {
  if (member->listening) return;
  member->listening = true;
  member->group->RebuildTable();
  FlushPending(member->group);
}

void Dispatcher::RemoveMember(Member* member) {
  Group* group = member->group;
  member->listening = false;
  group->RebuildTable();
  loop_.Remove(member->channel_watch);
  member->channel_watch = nullptr;
  Recover(member);
  auto it = std::find_if(group->members.begin(), group->members.end(), [&](auto& m) { return m.get() == member; });
  if (it != group->members.end()) {
    registry_.MemberRemoved(*member);
    group->members.erase(it);
  }
  ++group->members_left;
  if (!group->members.empty()) return;

  // The last member is gone. Connections still held for the group have nobody
  // to go to; the kernel would reset them too.
  for (auto& c : group->pending) Refuse(std::move(c.fd));
  registry_.MutableUsage(group->owner_uid).waiting -= static_cast<int64_t>(group->pending.size());
  group->pending.clear();
  RealSocket* sockets[2] = {group->real, group->also};
  std::vector<std::unique_ptr<RealSocket>> released = registry_.RemoveGroup(group);
  for (const auto& r : released) {
    ForgetRealSocket(r.get());
    Log(Severity::kInfo, "closed %s socket %s: its last group is gone", r->protocol == RP_PROTO_TCP ? "tcp" : "udp",
        FormatAddress(r->address));
  }
  for (RealSocket* real : sockets) {
    bool still_open = real != nullptr && std::none_of(released.begin(), released.end(),
                                                      [&](const auto& r) { return r.get() == real; });
    if (still_open) ResumeIfDrained(real);
  }
}

void Dispatcher::Refuse(UniqueFd fd) {
  // Reset rather than FIN: the client sees what it would see with no listener.
  struct linger reset = {1, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
  ++totals_.connections_refused;
}

void Dispatcher::OnTcpReadable(RealSocket* real) {
  for (int i = 0; i < kAcceptBatch && !real->paused; ++i) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int fd = accept4(real->fd.get(), reinterpret_cast<struct sockaddr*>(&ss), &len, SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
      ++totals_.accept_errors;
      LogLimited("accept-error", Severity::kWarning, "accept on %s: %s", FormatAddress(real->address), strerror(err));
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        // Out of resources: stop for a moment rather than spin; the kernel's
        // backlog keeps the connections. (The room check resumes it; it also
        // forgets a socket that closes meanwhile.)
        Pause(real);
        WaitForRoom(real);
      }
      return;
    }
    PendingConnection c;
    c.fd = UniqueFd(fd);
    rp_address_from_sockaddr(reinterpret_cast<struct sockaddr*>(&ss), len, &c.peer);
    ++totals_.connections_accepted;
    rp_address local = real->address;
    bool need_local = registry_.NeedsLocalAddress(*real);
    if (need_local) {
      struct sockaddr_storage ls;
      socklen_t ll = sizeof(ls);
      if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&ls), &ll) == 0) {
        rp_address_from_sockaddr(reinterpret_cast<struct sockaddr*>(&ls), ll, &local);
      }
    }
    Group* group = registry_.Route(*real, need_local ? &local : nullptr);
    if (group == nullptr) {
      Refuse(std::move(c.fd));
      continue;
    }
    c.hash = FlowHash(flow_key_, c.peer, local);
    ++group->accepted;
    Deliver(group, std::move(c));
    if (!HasRoom(real->owner_uid)) {
      // The owner's members hold what its limit allows: leave the rest in
      // the kernel's backlog until they take some.
      Pause(real);
      WaitForRoom(real);
    }
  }
}

void Dispatcher::Deliver(Group* group, PendingConnection connection) {
  // Keep arrival order: nothing overtakes connections already waiting.
  if (group->pending.empty() && TryDeliver(group, connection)) return;
  UidUsage& usage = registry_.MutableUsage(group->owner_uid);
  int limit = policy_.LimitsFor(group->owner_uid).queued;
  if (usage.waiting >= limit) {
    // The owner's share of the broker is used up: reset, as a full backlog
    // would. (Accepting stops at the limit, so only a taken-back or recovered
    // connection can get here.)
    ++group->refused;
    Refuse(std::move(connection.fd));
    LogLimited("limit-queued", Severity::kWarning, "uid %d: %d connections waiting in the broker; resetting more",
               group->owner_uid, usage.waiting);
    return;
  }
  group->pending.push_back(std::move(connection));
  ++usage.waiting;
  Pause(group->real);
}

bool Dispatcher::TryDeliver(Group* group, PendingConnection& connection) {
  size_t n = group->active.size();
  if (n == 0) return false;
  size_t first = static_cast<size_t>(group->table.Lookup(connection.hash));
  int64_t now = options_.stall_ms > 0 ? EventLoop::NowMs() : 0;
  for (size_t k = 0; k < n; ++k) {
    Member* m = group->active[(first + k) % n];
    if (m->full || m->stalled_until_ms > now) continue;
    rp_connection payload{};
    payload.peer = connection.peer;
    if (connection.peer.family != group->address.family) payload.flags = RP_CONNECTION_OTHER_FAMILY;
    payload.sequence = m->connections + 1;
    rp_header h = MakeHeader(RP_OP_CONNECTION, sizeof(payload), 0);
    int err = SendRecord(m->channel.get(), h, &payload, sizeof(payload), nullptr, 0, {connection.fd.get()}, MSG_DONTWAIT);
    if (err == 0) {
      ++m->connections;
      ++registry_.MutableUsage(group->owner_uid).in_channels;
      if (k > 0) ++group->active[first]->redirected_away;
      connection.fd.reset();  // the member has its own reference now
      if (options_.stall_ms > 0 && !m->watch_queue) {
        m->watch_queue = true;
        ScheduleStallCheck();
      }
      return true;
    }
    if (err == EAGAIN || err == ENOBUFS) {
      m->full = true;
      loop_.Modify(m->channel_watch, EPOLLOUT);
      continue;
    }
    LogLimited("channel-send", Severity::kWarning, "cannot hand a connection to member %d: %s", m->id, strerror(err));
  }
  return false;
}

void Dispatcher::OnChannelWritable(Member* member) {
  member->full = false;
  loop_.Modify(member->channel_watch, 0);
  FlushPending(member->group);
}

void Dispatcher::FlushPending(Group* group) {
  while (!group->pending.empty()) {
    if (!TryDeliver(group, group->pending.front())) return;
    group->pending.pop_front();
    --registry_.MutableUsage(group->owner_uid).waiting;
  }
  if (group->real != nullptr) ResumeIfDrained(group->real);
}

void Dispatcher::Pause(RealSocket* real) {
  if (real == nullptr || real->paused) return;
  real->paused = true;
  if (real->watch != nullptr) loop_.Modify(real->watch, 0);
}

void Dispatcher::ResumeIfDrained(RealSocket* real) {
  if (!real->paused) return;
  for (auto& g : real->domain->groups) {
    if (g->real == real && !g->pending.empty()) return;
  }
  if (real->protocol == RP_PROTO_TCP && !HasRoom(real->owner_uid)) {
    WaitForRoom(real);
    return;
  }
  real->paused = false;
  if (real->watch != nullptr) {
    loop_.Modify(real->watch, EPOLLIN);
    if (real->protocol == RP_PROTO_TCP) OnTcpReadable(real);  // catch up with what queued meanwhile
  }
}

bool Dispatcher::HasRoom(uid_t uid) {
  UidUsage& usage = registry_.MutableUsage(uid);
  int limit = policy_.LimitsFor(uid).queued;
  if (usage.queued() < limit) return true;
  // The estimate only grows between recounts: members take connections
  // without telling us. Count what their channels really hold.
  usage.in_channels = CountInChannels(uid);
  return usage.queued() < limit;
}

int64_t Dispatcher::CountInChannels(uid_t uid) const {
  constexpr int kRecord = sizeof(rp_header) + sizeof(rp_connection);
  int64_t total = 0;
  for (const Group* g : registry_.GroupsOwnedBy(uid)) {
    if (g->protocol != RP_PROTO_TCP) continue;
    for (const auto& m : g->members) {
      int bytes = 0;
      if (ioctl(m->channel_member.get(), SIOCINQ, &bytes) == 0) total += bytes / kRecord;
    }
  }
  return total;
}

void Dispatcher::WaitForRoom(RealSocket* real) {
  if (std::find(waiting_for_room_.begin(), waiting_for_room_.end(), real) == waiting_for_room_.end()) {
    waiting_for_room_.push_back(real);
  }
  if (room_check_scheduled_) return;
  room_check_scheduled_ = true;
  loop_.After(kRoomTickMs, [this] {
    room_check_scheduled_ = false;
    CheckRoom();
  });
}

void Dispatcher::CheckRoom() {
  std::vector<RealSocket*> reals;
  reals.swap(waiting_for_room_);
  for (RealSocket* real : reals) ResumeIfDrained(real);  // waits again if there is still no room
}

void Dispatcher::OnUdpReadable(RealSocket* real) {
  if (udp_buffers_.empty()) udp_buffers_.resize(kUdpSlot * kUdpBatch);
  constexpr size_t kControl = CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo)) +
                              CMSG_SPACE(sizeof(uint32_t));
  struct mmsghdr msgs[kUdpBatch];
  struct iovec iovs[kUdpBatch];
  struct sockaddr_storage names[kUdpBatch];
  alignas(struct cmsghdr) char controls[kUdpBatch][kControl];
  OutgoingDatagram outgoing[kUdpBatch];
  // A bounded number of batches per wakeup keeps other sockets served.
  for (int round = 0; round < 8; ++round) {
    int outgoing_count = 0;
    for (int i = 0; i < kUdpBatch; ++i) {
      iovs[i] = {udp_buffers_.data() + i * kUdpSlot + kDatagramPrefix, kUdpSlot - kDatagramPrefix};
      memset(&msgs[i], 0, sizeof(msgs[i]));
      msgs[i].msg_hdr.msg_iov = &iovs[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &names[i];
      msgs[i].msg_hdr.msg_namelen = sizeof(names[i]);
      msgs[i].msg_hdr.msg_control = controls[i];
      msgs[i].msg_hdr.msg_controllen = kControl;
    }
    int n = ReceiveBatch(real->fd.get(), msgs, kUdpBatch, MSG_DONTWAIT);
    if (n <= 0) {
      if (n < 0 && errno != EAGAIN && errno != EINTR) {
        LogLimited("udp-recv", Severity::kWarning, "receiving on %s: %s", FormatAddress(real->address), strerror(errno));
      }
      break;
    }
    for (int i = 0; i < n; ++i) {
      ++totals_.datagrams_received;
      struct msghdr& h = msgs[i].msg_hdr;
      rp_address source{};
      rp_address_from_sockaddr(static_cast<struct sockaddr*>(h.msg_name), h.msg_namelen, &source);
      rp_address destination = real->address;
      uint32_t ifindex = 0;
      bool has_destination = false;
      for (struct cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
          struct in_pktinfo info;
          memcpy(&info, CMSG_DATA(c), sizeof(info));
          destination.family = AF_INET;
          memset(destination.addr, 0, sizeof(destination.addr));
          memcpy(destination.addr, &info.ipi_addr, 4);
          ifindex = static_cast<uint32_t>(info.ipi_ifindex);
          has_destination = true;
        } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
          struct in6_pktinfo info;
          memcpy(&info, CMSG_DATA(c), sizeof(info));
          destination.family = AF_INET6;
          memcpy(destination.addr, &info.ipi6_addr, 16);
          ifindex = info.ipi6_ifindex;
          has_destination = true;
        } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
          memcpy(&real->kernel_drops, CMSG_DATA(c), sizeof(uint32_t));
        }
      }
      destination.port = real->address.port;
      char* slot = udp_buffers_.data() + i * kUdpSlot;
      if (h.msg_flags & MSG_TRUNC) continue;  // larger than any UDP datagram can be
      Group* group = registry_.Route(*real, has_destination ? &destination : nullptr);
      if (group == nullptr) {
        ++totals_.datagrams_unrouted;
        continue;
      }
      ++group->datagrams;
      Member* m = PrepareDatagram(group, slot, source, destination, ifindex, has_destination);
      if (m != nullptr) outgoing[outgoing_count++] = {m, {slot, kDatagramPrefix + msgs[i].msg_len}};
    }
    SendDatagrams(outgoing, outgoing_count);
    if (n < kUdpBatch) break;
  }
  // Under a flood the rounds above refill each ring several times: one
  // doorbell for all of them rather than one per round. An idle socket has
  // one round, so no datagram waits longer for its doorbell.
  RingDueDoorbells();
}

Member* Dispatcher::PrepareDatagram(Group* group, char* prefix, const rp_address& source,
                                    const rp_address& destination, uint32_t ifindex, bool has_destination) {
  size_t n = group->active.size();
  if (n == 0) {
    ++group->dropped_full;
    return nullptr;
  }
  uint64_t hash = FlowHash(flow_key_, source, destination);
  Member* m = group->active[static_cast<size_t>(group->table.Lookup(hash)) % n];
  rp_header h = MakeHeader(RP_OP_DATAGRAM, sizeof(rp_datagram), 0);
  rp_datagram d{};
  d.source = source;
  d.destination = destination;
  d.ifindex = ifindex;
  d.flags = has_destination ? RP_DATAGRAM_HAS_DESTINATION : 0;
  memcpy(prefix, &h, sizeof(h));
  memcpy(prefix + sizeof(h), &d, sizeof(d));
  return m;
}

// One sendmmsg per member for what a receive batch brought it, in order. A
// full channel is a full receive queue: what does not fit is dropped and
// counted, as the kernel does; sending it elsewhere would break the flow's
// affinity.
void Dispatcher::SendDatagrams(OutgoingDatagram* out, int count) {
  struct mmsghdr msgs[kUdpBatch];
  for (int i = 0; i < count; ++i) {
    Member* m = out[i].member;
    if (m == nullptr) continue;
    if (m->ring != nullptr) {
      WriteToRing(m, out + i, count - i);
      continue;
    }
    unsigned k = 0;
    for (int j = i; j < count; ++j) {
      if (out[j].member != m) continue;
      memset(&msgs[k], 0, sizeof(msgs[k]));
      msgs[k].msg_hdr.msg_iov = &out[j].iov;
      msgs[k].msg_hdr.msg_iovlen = 1;
      ++k;
      out[j].member = nullptr;
    }
    int sent;
    do {
      sent = SendBatch(m->channel.get(), msgs, k, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    if (sent < 0) {
      if (errno != EAGAIN && errno != ENOBUFS) {
        LogLimited("channel-send", Severity::kWarning, "cannot forward datagrams to member %d: %s", m->id,
                   strerror(errno));
      }
      sent = 0;
    }
    m->datagrams += static_cast<uint64_t>(sent);
    m->dropped += k - static_cast<unsigned>(sent);
  }
}

// A member's share of one receive batch, written into its ring with no
// system call; the doorbell rings only when the ring was empty (see
// datagram_ring.h for the order of doorbell and publication).
void Dispatcher::WriteToRing(Member* m, OutgoingDatagram* out, int count) {
  MemberRing& ring = *m->ring;
  uint64_t head = ring.head();
  int64_t written = 0;
  uint64_t dropped = 0;
  RingAccess access(ring.memory(), ring.size_bytes());  // its processes can shrink it under us
  bool was_empty = !ring.broken && rp_ring_taken_up_to(ring.ring(), head);
  for (int j = 0; j < count; ++j) {
    if (out[j].member != m) continue;
    out[j].member = nullptr;
    if (ring.broken) {
      ++dropped;
      continue;
    }
    const char* record = static_cast<const char*>(out[j].iov.iov_base);
    rp_datagram d;
    memcpy(&d, record + sizeof(rp_header), sizeof(d));
    uint32_t length = static_cast<uint32_t>(out[j].iov.iov_len - kDatagramPrefix);
    int r = rp_ring_write(ring.ring(), &head, &d, record + kDatagramPrefix, length);
    if (r == 0) {
      ++written;
    } else {
      ++dropped;  // full: as a full receive queue drops it
      if (r == -2) {
        ring.broken = true;
        LogLimited("ring-broken", Severity::kWarning, "member %d (pid %d) broke its datagram ring's cursors; "
                   "its datagrams are dropped", m->id, m->creds.pid);
      }
    }
  }
  if (written > 0 && !ring.broken) {
    rp_ring_publish(ring.ring(), head);
    bool ring_bell = rp_ring_add_pending(ring.ring(), written) || was_empty;
    if (access.faulted()) {
      ring.broken = true;
      LogLimited("ring-shrunk", Severity::kWarning, "member %d (pid %d) shrank its datagram ring; "
                 "its datagrams are dropped", m->id, m->creds.pid);
    } else {
      ring.head() = head;
      m->datagrams += static_cast<uint64_t>(written);
      if (ring_bell && !m->bell_due) {
        m->bell_due = true;
        bells_due_.push_back(m);
      }
      written = 0;
    }
  }
  m->dropped += dropped + static_cast<uint64_t>(written);
}

void Dispatcher::RingDueDoorbells() {
  for (Member* m : bells_due_) {
    m->bell_due = false;
    MemberRing& ring = *m->ring;
    if (ring.broken) continue;
    bool empty;
    {
      RingAccess access(ring.memory(), ring.size_bytes());
      // Its consumers took everything meanwhile (and found no doorbell to
      // read out, which is as it should be): nobody needs waking.
      empty = rp_ring_taken_up_to(ring.ring(), ring.head());
      if (access.faulted()) {
        ring.broken = true;
        LogLimited("ring-shrunk", Severity::kWarning, "member %d (pid %d) shrank its datagram ring; "
                   "its datagrams are dropped", m->id, m->creds.pid);
        continue;
      }
    }
    if (!empty) RingDoorbell(m);
  }
  bells_due_.clear();
}

void Dispatcher::RingDoorbell(Member* m) {
  rp_header bell = MakeHeader(RP_OP_DOORBELL, 0, 0);
  if (int err = SendRecord(m->channel.get(), bell, nullptr, 0, nullptr, 0, {}, MSG_DONTWAIT); err != 0) {
    LogLimited("doorbell", Severity::kWarning, "cannot ring member %d's doorbell: %s", m->id, strerror(err));
  }
}

void Dispatcher::ForwardDatagram(Group* group, char* prefix, size_t data_size, const rp_address& source,
                                 const rp_address& destination, uint32_t ifindex, bool has_destination) {
  Member* m = PrepareDatagram(group, prefix, source, destination, ifindex, has_destination);
  if (m == nullptr) return;
  OutgoingDatagram one = {m, {prefix, kDatagramPrefix + data_size}};
  SendDatagrams(&one, 1);
  RingDueDoorbells();
}

void Dispatcher::ScheduleStallCheck() {
  if (stall_check_scheduled_) return;
  stall_check_scheduled_ = true;
  loop_.After(kStallTickMs, [this] {
    stall_check_scheduled_ = false;
    CheckStalls();
  });
}

// Members that were sent connections recently are looked at every tick: a
// queue that does not shrink for stall_ms is taken back. Idle members cost
// nothing (watch_queue is cleared once their queue is seen empty).
void Dispatcher::CheckStalls() {
  bool again = false;
  int64_t now = EventLoop::NowMs();
  int needed_ticks = std::max(1, options_.stall_ms / kStallTickMs);
  for (const auto& [key, domain] : registry_.domains()) {
    for (const auto& group : domain->groups) {
      if (group->protocol != RP_PROTO_TCP) continue;
      for (const auto& m : group->members) {
        if (!m->watch_queue) continue;
        int bytes = 0;
        if (ioctl(m->channel_member.get(), SIOCINQ, &bytes) != 0) bytes = 0;
        uint64_t queued = static_cast<uint64_t>(bytes) / (sizeof(rp_header) + sizeof(rp_connection));
        uint64_t consumed = m->connections >= queued ? m->connections - queued : 0;
        if (queued == 0) {
          m->watch_queue = false;
          m->idle_ticks = 0;
          m->consumed_seen = consumed;
          continue;
        }
        again = true;
        if (consumed > m->consumed_seen) {
          m->consumed_seen = consumed;
          m->idle_ticks = 0;
          m->stall_backoff_ms = 0;  // it works again
          continue;
        }
        if (++m->idle_ticks < needed_ticks) continue;
        // Stalled. Only worth it if someone else can take the connections.
        bool others = false;
        for (Member* o : group->active) others |= o != m.get() && o->stalled_until_ms <= now && !o->full;
        if (!others) continue;
        ++m->stalls;
        // A member that stays stuck is left alone longer each time.
        m->stall_backoff_ms = m->stall_backoff_ms == 0 ? options_.stall_ms : std::min(2 * m->stall_backoff_ms, 10000);
        m->stalled_until_ms = now + m->stall_backoff_ms;
        m->idle_ticks = 0;
        int taken = TakeBack(m.get());
        LogLimited("member-stalled", Severity::kInfo,
                   "member %d (pid %d %s) consumed nothing for %d ms; %d queued connection(s) go to the others", m->id,
                   m->creds.pid, m->command, options_.stall_ms, taken);
      }
    }
  }
  if (again) ScheduleStallCheck();
}

int Dispatcher::TakeBack(Member* member) {
  Group* group = member->group;
  int taken = 0;
  char buffer[sizeof(rp_header) + sizeof(rp_connection)];
  for (;;) {
    ExtractedFds fds;
    ssize_t n = TakeUnconsumed(member->channel_member.get(), buffer, sizeof(buffer), &fds);
    if (n <= 0) break;
    rp_header h;
    memcpy(&h, buffer, sizeof(h));
    if (static_cast<size_t>(n) != sizeof(buffer) || h.opcode != RP_OP_CONNECTION || fds.fds.size() != 1) continue;
    rp_connection c;
    memcpy(&c, buffer + sizeof(h), sizeof(c));
    PendingConnection p;
    p.fd = std::move(fds.fds[0]);
    p.peer = c.peer;
    p.hash = FlowHash(flow_key_, c.peer, group->address);
    --member->connections;  // it never had them
    --registry_.MutableUsage(group->owner_uid).in_channels;
    ++member->stolen;
    ++taken;
    Deliver(group, std::move(p));
  }
  return taken;
}

void Dispatcher::Recover(Member* member) {
  Group* group = member->group;
  std::vector<char> buffer(RP_MAX_RECORD);
  if (member->ring != nullptr && !member->ring->broken) {
    // What it never took goes to the others (its processes are all gone).
    RingAccess access(member->ring->memory(), member->ring->size_bytes());
    rp_ring* ring = member->ring->ring();
    for (;;) {
      rp_ring_record r;
      const uint8_t* bytes = nullptr;
      uint64_t at = 0;
      int doorbell = 0;
      if (rp_ring_next(ring, &r, &bytes, &at) != RP_RING_READY) break;
      if (r.data_length > buffer.size() - kDatagramPrefix) break;
      memcpy(buffer.data() + kDatagramPrefix, bytes, r.data_length);
      if (!rp_ring_commit(ring, at, &r, &doorbell)) continue;
      ++member->recovered;
      ForwardDatagram(group, buffer.data(), r.data_length, r.datagram.source, r.datagram.destination, r.datagram.ifindex,
                      (r.datagram.flags & RP_DATAGRAM_HAS_DESTINATION) != 0);
    }
  }
  for (;;) {
    ExtractedFds fds;
    ssize_t n = TakeUnconsumed(member->channel_member.get(), buffer.data(), buffer.size(), &fds);
    if (n <= 0) break;
    if (static_cast<size_t>(n) < sizeof(rp_header)) continue;
    rp_header h;
    memcpy(&h, buffer.data(), sizeof(h));
    if (h.opcode == RP_OP_CONNECTION && static_cast<size_t>(n) == sizeof(h) + sizeof(rp_connection) &&
        fds.fds.size() == 1) {
      rp_connection c;
      memcpy(&c, buffer.data() + sizeof(h), sizeof(c));
      PendingConnection p;
      p.fd = std::move(fds.fds[0]);
      p.peer = c.peer;
      p.hash = FlowHash(flow_key_, c.peer, group->address);
      ++member->recovered;
      --registry_.MutableUsage(group->owner_uid).in_channels;
      Deliver(group, std::move(p));
    } else if (h.opcode == RP_OP_DATAGRAM && static_cast<size_t>(n) >= kDatagramPrefix) {
      rp_datagram d;
      memcpy(&d, buffer.data() + sizeof(h), sizeof(d));
      ++member->recovered;
      ForwardDatagram(group, buffer.data(), static_cast<size_t>(n) - kDatagramPrefix, d.source, d.destination, d.ifindex,
                      (d.flags & RP_DATAGRAM_HAS_DESTINATION) != 0);
    }
  }
  if (member->recovered > 0) {
    Log(Severity::kInfo, "member %d left with %d unconsumed item(s); handed to the rest of group %d", member->id,
        member->recovered, group->id);
  }
}

}  // namespace reuseport::broker
