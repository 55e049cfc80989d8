// The broker's control socket: accepts links from members and reuseportctl,
// reads their requests, checks them against the kernel's rules and the policy,
// and answers each with a status (0 or an errno) and, for joins, the fds that
// make a member.
//
// A misbehaving client gets an error reply or a disconnect; it never stops the
// broker serving anyone else. Every rejected input is logged, rate-limited.
//
// Thread-safety: none; runs on the broker's event loop.
#ifndef REUSEPORT_BROKER_CONTROL_SERVER_H_
#define REUSEPORT_BROKER_CONTROL_SERVER_H_

#include <sys/types.h>
#include <sys/un.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "dispatcher.h"
#include "event_loop.h"
#include "peer_identity.h"
#include "policy.h"
#include "registry.h"
#include "socket_facts.h"
#include "unique_fd.h"
#include "wire.h"

namespace reuseport::broker {

struct ControlOptions {
  std::string socket_path;
  bool takeover = false;  // take the path from a running broker (zero-downtime restart)
  mode_t socket_mode = 0666;  // every local user may ask; the checks are per request
  Policy policy;
  // How long a join that finds no group waits for a same-uid link that may be
  // about to create it (ParkBind): copies of a server started at once.
  int64_t join_wait_ms = 500;
};

// One connection to the control socket.
struct Link {
  uint64_t id = 0;
  UniqueFd fd;
  PeerCredentials creds;
  std::string command;
  Member* member = nullptr;  // set by BIND / ATTACH / REJOIN
  EventLoop::Watch* watch = nullptr;
  std::deque<std::string> outbox;  // reply bytes waiting for the client to read (no fds)
  size_t outbox_bytes = 0;
  bool requested = false;  // has sent a request: not a member still on its way to bind
  // A join that found no group while another link of the same uid may be
  // about to create it (see ParkBind).
  std::optional<Record> parked_bind;
  DomainKey parked_domain;
  int64_t parked_until_ms = 0;
};

struct ControlTotals {
  uint64_t links_accepted = 0;
  uint64_t requests = 0;
  uint64_t rejected_messages = 0;
  uint64_t refusals = 0;  // requests answered with an error
  uint64_t joins_waited = 0;  // joins that found no group and waited for one (ParkBind)
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

 private:
  absl::Status StartAccepting();

 public:

  const ControlTotals& totals() const { return totals_; }
  // Set once a successor has taken over: the broker should exit, untouched.
  bool handed_over() const { return handed_over_; }
  size_t link_count() const { return links_.size(); }

 private:
  void OnAcceptable();
  void OnLinkEvents(Link* link, uint32_t events);
  void CloseLink(Link* link);
  void Handle(Link* link, Record& record);

  // `parked_until_ms` is 0 for a fresh request, else the deadline of a join
  // that was waiting for its group.
  void HandleBind(Link* link, Record& record, int64_t parked_until_ms = 0);
  // Holds a join that found no group when the group may be on its way: two
  // members starting at once both probe the port, one kernel bind wins, and
  // the loser's BIND can reach us before the winner's. Rather than answer
  // "no group" (EADDRINUSE to the program), the join waits until a group
  // appears on its port or a short deadline passes. Only while another link
  // of the same uid has sent nothing yet (a shim between setsockopt and its
  // BIND): otherwise the answer is final at once.
  bool ParkBind(Link* link, Record& record, const DomainKey& domain, int64_t parked_until_ms);
  // Runs the parked joins of `domain` again, after the current event.
  void RetryParkedBinds(const DomainKey& domain);
  void RetryParkedBind(uint64_t link_id, bool final);
  void HandleListen(Link* link, Record& record);
  void HandleAttach(Link* link, Record& record);
  void HandleRejoin(Link* link, Record& record);
  void HandleTakeover(Link* link, Record& record);
  // Listens at a temporary path and renames it over the socket path; when a
  // broker runs there (takeover), then tells that one to go.
  absl::Status ListenAndPublish(const struct sockaddr_un& addr, bool from_running);
  void HandleStatus(Link* link, Record& record);

  // Creates a member for `link` in `group` and answers with its fds.
  void Admit(Link* link, const rp_header& request, Group* group, int real_fd);
  // Makes a group from a socket the kernel bound (for the member or for us).
  void CreateGroup(Link* link, const rp_header& request, UniqueFd socket, const SocketFacts& facts, PortDomain& domain);
  // 0, or EDQUOT when `uid` already holds what its limits allow.
  int CheckLimits(const Link* link, uid_t owner_uid, bool new_group) const;
  bool RefuseUnmappedUid(Link* link, const rp_header& h, uid_t owner_uid);

  void Reply(Link* link, const rp_header& request, int status, const void* payload, size_t payload_size,
             const std::vector<int>& fds = {});
  void Refuse(Link* link, const rp_header& request, int status, const std::string& reason_key,
              const std::string& detail);
  void QueueRecord(Link* link, std::string bytes);
  void FlushOutbox(Link* link);

  EventLoop& loop_;
  Registry& registry_;
  Dispatcher& dispatcher_;
  ControlOptions options_;
  UniqueFd listener_;
  ino_t path_inode_ = 0;  // the socket file we made: unlink it at exit only if it is still ours
  EventLoop::Watch* listener_watch_ = nullptr;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Link>> links_;
  absl::flat_hash_map<uint64_t, Member*> members_by_key_;  // channel inode -> member
  absl::flat_hash_map<uid_t, int> links_by_uid_;
  absl::flat_hash_set<uint64_t> parked_links_;
  uint64_t last_link_id_ = 0;
  std::vector<char> buffer_;
  ControlTotals totals_;
  bool handed_over_ = false;
};

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_CONTROL_SERVER_H_
