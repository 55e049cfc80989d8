// The broker's control socket: accepts links from members and reuseportctl,
// reads their requests and answers each with a status (0 or an errno) and,
// for joins, the fds that make a member.
//
// A request goes through three steps, in this order and nowhere else:
//   facts     what the kernel says about what was passed and who passed it
//             (socket_facts.h, peer_identity.h, channel_proof.h);
//   decision  admission.h: a pure function of the request, the facts, the
//             registry and the policy, returning a plan;
//   plan      carried out here with membership.h; nothing changed before,
//             so a refusal leaves no trace.
//
// A misbehaving client gets an error reply or a disconnect; it never stops the
// broker serving anyone else. What a client can make the broker hold is
// bounded per uid: links (policy), replies it does not read (reply_budget.h),
// and one status document in flight per link.
//
// Links are closed lazily: CloseLink ends the membership at once but frees the
// Link only after the current event, so no handler loses the link it holds.
//
// Thread-safety: none; runs on the broker's event loop.
#ifndef REUSEPORT_BROKER_CONTROL_SERVER_H_
#define REUSEPORT_BROKER_CONTROL_SERVER_H_

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "admission.h"
#include "control_socket.h"
#include "dispatcher.h"
#include "event_loop.h"
#include "membership.h"
#include "peer_identity.h"
#include "policy.h"
#include "registry.h"
#include "reply_budget.h"
#include "unique_fd.h"
#include "wire.h"

namespace reuseport::broker {

struct ControlOptions {
  std::string socket_path;
  bool takeover = false;      // take the path from a running broker (zero-downtime restart)
  mode_t socket_mode = 0666;  // every local user may ask; the checks are per request
  Policy policy;
  // How long a join that found no group may wait for one another link of its
  // uid may be creating (see JoinFacts::creator_may_be_coming). Well inside
  // the shim's 3 s reply timeout.
  int64_t join_wait_ms = 500;
  // Replies waiting for all links together, whatever their uids.
  int64_t reply_bytes_total = int64_t{64} << 20;
  int64_t udp_channel_bytes = 4 << 20;  // a UDP member's queue, its uid's budget permitting
  bool udp_rings = true;  // UDP members receive through shared-memory rings (member_ring.h)
};

// One connection to the control socket.
struct Link {
  uint64_t id = 0;
  UniqueFd fd;
  PeerIdentity identity;  // read when the link was accepted
  std::string command;
  Member* member = nullptr;  // set by BIND / ATTACH / REJOIN
  EventLoop::Watch* watch = nullptr;
  struct Outgoing {
    std::string bytes;
    bool status = false;  // part of a status document
  };
  std::deque<Outgoing> outbox;  // replies waiting for the client to read (no fds)
  int64_t outbox_bytes = 0;     // charged to the reply budget
  int status_records = 0;       // status records in the outbox: at most one document in flight
  bool requested = false;  // has sent a request: not a member still on its way to bind
  bool closing = false;    // CloseLink ran; freed after the current event
  // A join waiting for its group (JoinPlan::Action::kWait).
  std::optional<Record> parked_join;
  DomainKey parked_domain;
  int64_t parked_until_ms = 0;
};

struct ControlTotals {
  uint64_t links_accepted = 0;
  uint64_t requests = 0;
  uint64_t rejected_messages = 0;
  uint64_t refusals = 0;      // requests answered with an error
  uint64_t joins_waited = 0;  // joins that found no group and waited for one
  uint64_t links_closed_unread = 0;  // closed for holding more unread replies than their budget
  absl::flat_hash_map<std::string, uint64_t> refusals_by_reason;
};

class ControlServer {
 public:
  ControlServer(EventLoop& loop, Registry& registry, Dispatcher& dispatcher, const ControlOptions& options);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  absl::Status Start();
  void Shutdown();

  const ControlTotals& totals() const { return totals_; }
  size_t link_count() const { return links_.size(); }
  // Set once a successor took over: the broker exits leaving its files to it.
  bool handed_over() const { return handed_over_; }
  const ReplyBudget& reply_budget() const { return reply_budget_; }
  // The socket directory (hardening allows removing files there only).
  int socket_directory_fd() const { return control_socket_.directory_fd(); }

 private:
  void OnAcceptable();
  void OnLinkEvents(Link* link, uint32_t events);
  void CloseLink(Link* link);
  void SweepClosedLinks();
  void Handle(Link* link, Record& record);

  // BIND and REJOIN. `wait_deadline_ms` is 0 for a fresh request, else the
  // deadline of a join that was waiting for its group.
  void HandleJoin(Link* link, Record& record, int64_t wait_deadline_ms = 0);
  JoinFacts GatherJoinFacts(const Link& link, const JoinRequest& request, const Record& record,
                            int64_t wait_deadline_ms) const;
  // The group the new member joined, or null (refused, or the link went).
  Group* AdmitNew(Link* link, const rp_header& request, const JoinPlan& plan, UniqueFd socket, const SocketFacts& facts);
  void AdmitRejoin(Link* link, const JoinRequest& request, const rp_header& header, const JoinPlan& plan,
                   Record& record);
  void BindAndCreate(Link* link, const rp_header& request, JoinPlan plan, const JoinRequest& join, UniqueFd socket);
  // The member whose channel `claimed_member_end` is proven to be, if any.
  Member* ProvenMember(int claimed_member_end) const;

  // Holds a join that found no group while another link of its uid may be
  // creating it (two members starting at once both probe the port; the
  // loser's BIND can reach us before the winner's).
  void Park(Link* link, Record& record, const DomainKey& domain, int64_t wait_deadline_ms);
  // Runs the waiting joins of `domain` again, after the current event.
  void RetryParkedJoins(const DomainKey& domain);
  void RetryParkedJoin(uint64_t link_id, bool final);

  void HandleListen(Link* link, Record& record);
  void HandleAttach(Link* link, Record& record);
  void HandleTakeover(Link* link, Record& record);
  void HandleStatus(Link* link, Record& record);

  void Reply(Link* link, const rp_header& request, int status, const void* payload, size_t payload_size,
             const std::vector<int>& fds = {});
  void Refuse(Link* link, const rp_header& request, const Refusal& refusal);
  // False (and the link closed) when the reply would exceed its budget.
  bool QueueRecord(Link* link, std::string bytes, bool status);
  void FlushOutbox(Link* link);

  EventLoop& loop_;
  Registry& registry_;
  Dispatcher& dispatcher_;
  ControlOptions options_;
  AdmissionSettings admission_;
  Membership membership_;
  ControlSocket control_socket_;
  UniqueFd listener_;
  EventLoop::Watch* listener_watch_ = nullptr;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Link>> links_;
  std::vector<uint64_t> closed_links_;  // freed by SweepClosedLinks
  absl::flat_hash_map<uid_t, int> links_by_uid_;
  absl::flat_hash_map<uid_t, int> silent_links_by_uid_;  // open links that have not sent a request yet
  absl::flat_hash_set<uint64_t> parked_links_;
  ReplyBudget reply_budget_;
  uint64_t last_link_id_ = 0;
  std::vector<char> buffer_;
  ControlTotals totals_;
  bool handed_over_ = false;
};

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_CONTROL_SERVER_H_
