#ifndef REUSEPORT_TESTS_SUPPORT_LOAD_CLIENT_H_
#define REUSEPORT_TESTS_SUPPORT_LOAD_CLIENT_H_

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace reuseport::testing {

// Clients that drive real load at a group of members speaking the members'
// line protocol (tests/members/), and record who answered what.
//
// Both run in the calling thread (non-blocking sockets and epoll) and always
// end: every connection or datagram has a timeout, so a run takes at most
// about (count / concurrency + 1) * timeout. Thread-safe: no shared state
// except a process-wide counter for default token prefixes.

// ---- TCP: one connection per request ----

struct TcpLoadOptions {
  // The target: `address` if set (AF_INET or AF_INET6), else host + port.
  // Must be a concrete address (not a wildcard) for IPv6.
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::optional<sockaddr_storage> address;
  int connections = 100;
  // Connections in flight at once.
  int concurrency = 16;
  // From connect() to the end of the reply (see await_close).
  absl::Duration connection_timeout = absl::Seconds(5);
  // After the reply line, wait for the server to close (EOF) before counting
  // the connection as served: members close right after replying, and a test
  // that then counts the members' fds sees no connection still open. Bytes
  // after the line make it a bad reply.
  bool await_close = true;
  // Tokens are "<prefix><index>"; empty: "r<run>-", unique in this process.
  std::string token_prefix;
  // If set, counts connections whose request has been sent (the kernel took
  // the connection, into a member's or a backlog's queue): a test running the
  // load in a thread waits on it (WaitForCount) instead of sleeping.
  std::atomic<int>* requests_sent = nullptr;
};

// Waits, bounded by `timeout`, until `counter` reaches `want`.
bool WaitForCount(const std::atomic<int>& counter, int want, absl::Duration timeout);

// A successful exchange: reply line "<responder> <rest>".
struct TcpReply {
  std::string responder;  // the member id
  std::string rest;       // "<token>[ inherit-ok|inherit-BAD ...]"
};

struct TcpLoadResult {
  std::string target;  // "127.0.0.1:8080"
  int attempted = 0;
  int successes = 0;
  // Failures by kind.
  int refused = 0;    // ECONNREFUSED
  int reset = 0;      // ECONNRESET / EPIPE
  int timeout = 0;    // no full reply within connection_timeout
  int closed = 0;     // the server closed before a full reply line
  int bad_reply = 0;  // a reply line not of the form "<id> <our token>[ ...]"
  int other = 0;      // any other error (socket(), EADDRNOTAVAIL, ...)
  int failures() const { return refused + reset + timeout + closed + bad_reply + other; }

  std::map<std::string, int> per_member;    // responder id -> connections served
  std::map<std::string, TcpReply> replies;  // token -> reply, successes only
  std::vector<std::string> tokens;          // every token, in the order sent
  std::vector<std::string> failure_examples;  // the first few, "<token>: <kind>: <detail>"
  absl::Duration elapsed;

  // One paragraph for test failure messages.
  std::string Summary() const;
};

// Opens `connections` connections, each sending "HELLO <token>\n" and reading
// one reply line.
TcpLoadResult RunTcpLoad(const TcpLoadOptions& options);

// ---- UDP: flows of datagrams from distinct source ports ----

struct UdpFlowOptions {
  // The target, as in TcpLoadOptions; must be a concrete address, since the
  // replies' source is compared with it.
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::optional<sockaddr_storage> address;
  // Flow f is one socket with its own source port (all are open for the whole
  // run, so the ports are distinct); it sends "<f>-<seq>" for seq in
  // [0, datagrams_per_flow), one at a time, each after the previous one's
  // reply or timeout.
  int flows = 100;
  int datagrams_per_flow = 5;
  // Flows with a datagram in flight at once; keeps the members' receive
  // buffers from overflowing.
  int concurrency = 64;
  // A datagram unanswered this long counts as lost. Loopback loses a datagram
  // only where a receive buffer overflows (which the broker counts as a
  // drop), never because a process waited for a CPU; on a loaded 2-vCPU
  // machine under a sanitizer a member can wait seconds, so the default is
  // far above any scheduling delay. It costs nothing when replies come: each
  // reply ends its datagram's wait.
  absl::Duration reply_timeout = absl::Seconds(10);
  // Resends of a datagram whose reply timed out before it counts as lost.
  // Correctness tests keep 0: a resend would hide a datagram the group lost.
  int retries = 0;
};

struct UdpFlowResult {
  std::string target;
  int datagrams_sent = 0;      // including resends
  int replies = 0;             // replies matching a datagram in flight
  int lost = 0;                // datagrams never answered
  int bad_replies = 0;         // not "<id> <payload>[ ...]" for a payload we sent
  int late_replies = 0;        // replies to a datagram already resent or given up on
  int source_mismatches = 0;   // replies not from the target address and port
  int setup_errors = 0;        // flows whose socket could not be set up
  std::vector<std::string> examples;  // the first few problems, as text

  std::map<std::string, int> per_member;               // responder id -> replies
  std::vector<std::set<std::string>> responders_by_flow;  // index: flow
  std::vector<uint16_t> flow_source_ports;              // index: flow; 0 if unset
  // Text after "<id> <payload> " in replies (e.g. "dst=127.0.0.1") -> count.
  std::map<std::string, int> reply_suffixes;
  absl::Duration elapsed;

  // Flow affinity: flows answered by more than one member (should be 0).
  int flows_with_several_responders() const;
  // Flows that got no reply at all.
  int flows_without_reply() const;
  std::string Summary() const;
};

UdpFlowResult RunUdpFlows(const UdpFlowOptions& options);

}  // namespace reuseport::testing

#endif  // REUSEPORT_TESTS_SUPPORT_LOAD_CLIENT_H_
