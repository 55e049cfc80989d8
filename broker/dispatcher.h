// Moves traffic from the real sockets to members: accepts TCP connections and
// hands each to a member over its channel, receives UDP datagrams and forwards
// each to a member, both chosen by the flow hash through the group's Maglev
// table. Also carries membership changes that affect dispatch: a member that
// leaves has what it never consumed taken back from its channel and handed to
// the others, so a member that exits or is killed loses nothing the broker
// accepted.
//
// Never blocks: every send is MSG_DONTWAIT. A member whose channel is full is
// skipped (TCP: its connection goes to the next member; UDP: the datagram is
// dropped and counted, as the kernel counts a full receive queue). When every
// member of a group is full the broker stops accepting and the kernel's
// backlog holds the load.
//
// What one uid's groups hold is bounded by its policy's `queued` limit:
// connections waiting in the broker plus those in its members' channels (fds
// in flight, which the kernel counts against the broker's own RLIMIT_NOFILE).
// At the limit the broker stops accepting on that uid's sockets until its
// members take some; other uids are not affected.
//
// Thread-safety: none; runs on the broker's event loop.
#ifndef REUSEPORT_BROKER_DISPATCHER_H_
#define REUSEPORT_BROKER_DISPATCHER_H_

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "event_loop.h"
#include "flow_hash.h"
#include "policy.h"
#include "registry.h"

namespace reuseport::broker {

struct DispatchOptions {
  int member_window = 128;              // TCP connections queued per member before it counts as full
  int udp_channel_bytes = 4 << 20;      // UDP bytes queued per member before datagrams drop
  // A TCP member with connections queued that consumes none for this long is
  // stalled (stopped, busy, at its fd limit): they go to the others. 0 = never.
  int stall_ms = 200;
};

struct DispatchTotals {
  uint64_t connections_accepted = 0;
  uint64_t connections_refused = 0;  // no group could take them: reset, as with no listener
  uint64_t datagrams_received = 0;
  uint64_t datagrams_unrouted = 0;   // arrived for an address no group holds
  uint64_t accept_errors = 0;
};

class Dispatcher {
 public:
  // `policy` gives each uid's limits; it must outlive the dispatcher.
  Dispatcher(EventLoop& loop, Registry& registry, const DispatchOptions& options, const FlowKey& flow_key,
             const Policy& policy);
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Measures the kernel's per-record cost of a channel so the window can be
  // expressed in connections. Call once before members exist.
  void CalibrateChannels();

  // Sizes and makes non-blocking the broker's end of a new member's channel;
  // a UDP channel holds `udp_bytes` (admission.h decides how many), or only
  // doorbells when the member has a ring.
  void PrepareChannel(int channel_fd, int protocol, int64_t udp_bytes, bool ring) const;
  // Tells m's processes that datagrams wait in its ring (datagram_ring.h).
  void RingDoorbell(Member* m);

  // UDP real sockets start receiving at once; TCP ones when listening.
  absl::Status StartUdp(RealSocket* real);
  // Returns 0 or the errno of listen().
  int Listen(RealSocket* real, int backlog);

  void AddMember(Group* group, std::unique_ptr<Member> member);
  void SetListening(Member* member);
  // Removes a member, hands its unconsumed connections and datagrams to the
  // rest of its group, and closes the group when it was the last.
  void RemoveMember(Member* member);

  // Stops watching a real socket that is about to close.
  void ForgetRealSocket(RealSocket* real);

  // A wider socket taking over from narrower ones of its port (0.0.0.0 after
  // 127.0.0.1): an old kernel binds it beside them only once they are marked
  // SO_REUSEADDR and, for TCP, no longer listening. Before the bind: marks
  // them, hands every connection queued on them to its group, stops them
  // listening. If the bind fails: Restore. After it: Supersede.
  void ReleaseForWiderSocket(const std::vector<RealSocket*>& narrower);
  void RestoreNarrowerSockets(const std::vector<RealSocket*>& narrower);
  // TCP: the groups move to `wider`, which listens now; the narrower sockets
  // are forgotten (members still hold them, bound and idle). UDP: they stay
  // and keep receiving their own addresses, the kernel's most specific match.
  // SO_REUSEADDR comes off again, so no later socket can overlap.
  void Supersede(const std::vector<RealSocket*>& narrower, RealSocket* wider);

  const DispatchTotals& totals() const { return totals_; }

 private:
  void OnTcpReadable(RealSocket* real);
  void OnUdpReadable(RealSocket* real);
  void OnChannelWritable(Member* member);

  void Deliver(Group* group, PendingConnection connection);
  bool TryDeliver(Group* group, PendingConnection& connection);
  void FlushPending(Group* group);
  void Pause(RealSocket* real);
  void ResumeIfDrained(RealSocket* real);
  // Is `uid` below its queued limit? Recounts its members' channels when the
  // running estimate says it is not.
  bool HasRoom(uid_t uid);
  int64_t CountInChannels(uid_t uid) const;
  // Resumes `real` once its owner has room again (checked every tick).
  void WaitForRoom(RealSocket* real);
  void CheckRoom();
  void Refuse(UniqueFd fd);
  // Accepts and hands on whatever waits in a TCP real socket's backlog.
  void DrainBacklog(RealSocket* real);

  struct OutgoingDatagram {
    Member* member;
    struct iovec iov;  // the whole channel record: prefix and data
  };
  // Fills the channel record's prefix (kDatagramPrefix bytes before the data)
  // and picks the flow's member; null when the group has none.
  Member* PrepareDatagram(Group* group, char* prefix, const rp_address& source, const rp_address& destination,
                          uint32_t ifindex, bool has_destination);
  void SendDatagrams(OutgoingDatagram* out, int count);
  void WriteToRing(Member* m, OutgoingDatagram* out, int count);
  // Rings the doorbells WriteToRing left due: once per wakeup rather than
  // per receive batch, and only for rings that still hold records by then.
  void RingDueDoorbells();
  // prefix points at kDatagramPrefix bytes of room before the datagram data.
  void ForwardDatagram(Group* group, char* prefix, size_t data_size, const rp_address& source,
                       const rp_address& destination, uint32_t ifindex, bool has_destination);
  void Recover(Member* member);
  // Takes queued connections back from `member` and hands them to the rest.
  int TakeBack(Member* member);
  void CheckStalls();
  void ScheduleStallCheck();

  bool stall_check_scheduled_ = false;
  static constexpr int kStallTickMs = 50;
  bool room_check_scheduled_ = false;
  static constexpr int kRoomTickMs = 20;
  std::vector<RealSocket*> waiting_for_room_;

  EventLoop& loop_;
  Registry& registry_;
  DispatchOptions options_;
  FlowKey flow_key_;
  const Policy& policy_;
  int tcp_channel_sndbuf_ = 0;  // SO_SNDBUF value that holds member_window records
  DispatchTotals totals_;
  std::vector<char> udp_buffers_;
  std::vector<Member*> bells_due_;  // filled and rung within one OnUdpReadable or ForwardDatagram
};

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_DISPATCHER_H_
