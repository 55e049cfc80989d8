// RunUdpFlows: many UDP flows (distinct source ports) from one thread, to check
// that each flow sticks to one member and that replies come from the shared port.
#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "load_client.h"
#include "load_target.h"

namespace reuseport::testing {
namespace {

using load_internal::AddExample;
using load_internal::MillisecondsUntil;

struct Flow {
  int fd = -1;
  int next_seq = 0;        // the datagram to send next, or in flight
  bool in_flight = false;
  int attempts = 0;        // sends of the datagram in flight
  absl::Time deadline;
  bool finished = false;
};

// A reply "<id> <flow>-<seq>[ <suffix>]".
struct ParsedReply {
  std::string responder;
  int flow = -1;
  int seq = -1;
  std::string suffix;
};

bool ParseReply(const std::string& text, ParsedReply& out) {
  size_t space = text.find(' ');
  if (space == std::string::npos || space == 0) return false;
  out.responder = text.substr(0, space);
  std::string rest = text.substr(space + 1);
  size_t suffix_start = rest.find(' ');
  std::string payload = rest.substr(0, suffix_start);
  out.suffix = suffix_start == std::string::npos ? "" : rest.substr(suffix_start + 1);
  size_t dash = payload.find('-');
  return dash != std::string::npos && absl::SimpleAtoi(payload.substr(0, dash), &out.flow) &&
         absl::SimpleAtoi(payload.substr(dash + 1), &out.seq);
}

// One run of RunUdpFlows. Not thread-safe; lives on the caller's stack.
class UdpFlowRun {
 public:
  UdpFlowRun(const UdpFlowOptions& options, const SocketAddress& target, UdpFlowResult& result)
      : options_(options), target_(target), result_(result) {}

  void Run() {
    int flow_count = std::max(0, options_.flows);
    flows_.resize(static_cast<size_t>(flow_count));
    result_.responders_by_flow.resize(flows_.size());
    result_.flow_source_ports.assign(flows_.size(), 0);
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) {
      result_.setup_errors = flow_count;
      AddExample(result_.examples, absl::StrCat("epoll_create1: ", std::strerror(errno)));
      return;
    }
    // Every socket stays open for the whole run, so the source ports are distinct.
    for (int f = 0; f < flow_count; f++) {
      if (OpenFlow(f)) waiting_.push_back(f);
    }
    std::vector<epoll_event> events(64);
    for (;;) {
      while (active_ < std::max(1, options_.concurrency) && !waiting_.empty()) {
        int f = waiting_.front();
        waiting_.pop_front();
        active_++;
        SendNext(f);
      }
      if (active_ == 0 && waiting_.empty()) break;
      absl::Time earliest = absl::InfiniteFuture();
      for (const Flow& flow : flows_) {
        if (flow.in_flight) earliest = std::min(earliest, flow.deadline);
      }
      int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()),
                         MillisecondsUntil(earliest, absl::Now()));
      for (int i = 0; i < n; i++) Receive(static_cast<int>(events[static_cast<size_t>(i)].data.u32));
      ExpireTimedOut(absl::Now());
    }
    for (Flow& flow : flows_) {
      if (flow.fd >= 0) close(flow.fd);
    }
    close(epoll_fd_);
  }

 private:
  bool OpenFlow(int f) {
    Flow& flow = flows_[static_cast<size_t>(f)];
    flow.fd = socket(target_.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    std::string failed_call = "socket";
    if (flow.fd >= 0) {
      SocketAddress any = target_.AnyOfSameFamily();
      epoll_event interest{};
      interest.events = EPOLLIN;
      interest.data.u32 = static_cast<uint32_t>(f);
      if (bind(flow.fd, any.get(), any.size()) != 0) {
        failed_call = "bind";
      } else if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, flow.fd, &interest) != 0) {
        failed_call = "epoll_ctl";
      } else if (absl::StatusOr<SocketAddress> local = SocketAddress::LocalOf(flow.fd); local.ok()) {
        result_.flow_source_ports[static_cast<size_t>(f)] = local->port();
        return true;
      } else {
        failed_call = "getsockname";
      }
    }
    result_.setup_errors++;
    AddExample(result_.examples, absl::StrCat("flow ", f, ": ", failed_call, ": ", std::strerror(errno)));
    if (flow.fd >= 0) close(flow.fd);
    flow.fd = -1;
    flow.finished = true;
    return false;
  }

  // Sends the flow's next datagram, or retires the flow when all are done.
  void SendNext(int f) {
    Flow& flow = flows_[static_cast<size_t>(f)];
    if (flow.next_seq >= options_.datagrams_per_flow) {
      flow.finished = true;
      active_--;
      return;
    }
    flow.in_flight = true;
    flow.attempts = 0;
    Send(f);
  }

  void Send(int f) {
    Flow& flow = flows_[static_cast<size_t>(f)];
    std::string payload = absl::StrCat(f, "-", flow.next_seq);
    flow.attempts++;
    flow.deadline = absl::Now() + options_.reply_timeout;
    result_.datagrams_sent++;
    if (sendto(flow.fd, payload.data(), payload.size(), 0, target_.get(), target_.size()) < 0) {
      // Counted as lost when the timeout passes; the error is the clue.
      AddExample(result_.examples, absl::StrCat("flow ", f, ": sendto: ", std::strerror(errno)));
    }
  }

  void Receive(int f) {
    Flow& flow = flows_[static_cast<size_t>(f)];
    char buf[4096];
    for (;;) {
      sockaddr_storage from{};
      socklen_t from_len = sizeof(from);
      ssize_t n = recvfrom(flow.fd, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &from_len);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return;  // EAGAIN, or a queued ICMP error: the timeout accounts for it
      std::string text(buf, static_cast<size_t>(n));
      absl::StatusOr<SocketAddress> source =
          SocketAddress::FromSockaddr(reinterpret_cast<const sockaddr*>(&from), from_len);
      if (!source.ok() || !(*source == target_)) {
        result_.source_mismatches++;
        AddExample(result_.examples,
                   absl::StrCat("flow ", f, ": reply '", text, "' from ",
                                source.ok() ? source->ToString() : source.status().ToString(),
                                ", not ", target_.ToString()));
      }
      ParsedReply reply;
      if (!ParseReply(text, reply) || reply.flow != f || reply.seq < 0 ||
          reply.seq >= options_.datagrams_per_flow || reply.seq > flow.next_seq) {
        result_.bad_replies++;
        AddExample(result_.examples, absl::StrCat("flow ", f, ": bad reply '", text, "'"));
        continue;
      }
      result_.responders_by_flow[static_cast<size_t>(f)].insert(reply.responder);
      if (!flow.in_flight || reply.seq != flow.next_seq) {
        result_.late_replies++;  // a duplicate, or an answer after a resend or after giving up
        continue;
      }
      result_.replies++;
      result_.per_member[reply.responder]++;
      if (!reply.suffix.empty()) result_.reply_suffixes[reply.suffix]++;
      flow.in_flight = false;
      flow.next_seq++;
      SendNext(f);
    }
  }

  void ExpireTimedOut(absl::Time now) {
    for (size_t f = 0; f < flows_.size(); f++) {
      Flow& flow = flows_[f];
      if (!flow.in_flight || flow.deadline > now) continue;
      if (flow.attempts <= options_.retries) {
        Send(static_cast<int>(f));
        continue;
      }
      result_.lost++;
      AddExample(result_.examples, absl::StrCat("flow ", f, ": no reply to ", f, "-", flow.next_seq,
                                                " after ", flow.attempts, " send(s)"));
      flow.in_flight = false;
      flow.next_seq++;
      SendNext(static_cast<int>(f));
    }
  }

  const UdpFlowOptions& options_;
  const SocketAddress& target_;
  UdpFlowResult& result_;
  int epoll_fd_ = -1;
  std::vector<Flow> flows_;
  std::deque<int> waiting_;  // flows not started yet
  int active_ = 0;           // flows started and not finished
};

}  // namespace

UdpFlowResult RunUdpFlows(const UdpFlowOptions& options) {
  UdpFlowResult result;
  absl::Time start = absl::Now();
  absl::StatusOr<SocketAddress> target =
      load_internal::ResolveTarget(options.host, options.port, options.address);
  if (!target.ok()) {
    result.setup_errors = std::max(0, options.flows);
    AddExample(result.examples, absl::StrCat("bad target: ", target.status().ToString()));
  } else {
    result.target = target->ToString();
    UdpFlowRun(options, *target, result).Run();
  }
  result.elapsed = absl::Now() - start;
  return result;
}

int UdpFlowResult::flows_with_several_responders() const {
  return static_cast<int>(std::count_if(responders_by_flow.begin(), responders_by_flow.end(),
                                        [](const auto& ids) { return ids.size() > 1; }));
}

int UdpFlowResult::flows_without_reply() const {
  return static_cast<int>(std::count_if(responders_by_flow.begin(), responders_by_flow.end(),
                                        [](const auto& ids) { return ids.empty(); }));
}

std::string UdpFlowResult::Summary() const {
  std::vector<std::string> members;
  for (const auto& [id, count] : per_member) members.push_back(absl::StrCat(id, "=", count));
  return absl::StrCat(
      "UDP flows to ", target, ": ", responders_by_flow.size(), " flows, ", datagrams_sent,
      " datagrams sent, ", replies, " replies, ", lost, " lost, ", bad_replies, " bad, ",
      late_replies, " late, ", source_mismatches, " from the wrong source, ", setup_errors,
      " setup errors; ", flows_with_several_responders(), " flows with several responders, ",
      flows_without_reply(), " without reply; in ", absl::FormatDuration(elapsed),
      "; per member: {", absl::StrJoin(members, ", "), "}",
      examples.empty() ? "" : "; examples:\n  ", absl::StrJoin(examples, "\n  "));
}

}  // namespace reuseport::testing
