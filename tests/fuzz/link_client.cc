#include "link_client.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "fuzz_check.h"
#include "scm_rights.h"

namespace reuseport::fuzz {

using reuseport::broker::ReceiveRecord;
using reuseport::broker::ReceiveResult;
using reuseport::broker::ReceiveStatus;
using reuseport::broker::UniqueFd;

namespace {

int64_t NowMs() {
  struct timespec ts {};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// Waits for `events` until `deadline_ms`; false on timeout.
bool WaitFor(int fd, short events, int64_t deadline_ms) {
  for (;;) {
    int64_t left = deadline_ms - NowMs();
    if (left < 0) left = 0;
    struct pollfd p = {fd, events, 0};
    int n = poll(&p, 1, static_cast<int>(left));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return false;
  }
}

}  // namespace

bool LinkClient::Connect(const std::string& socket_path) {
  UniqueFd fd(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return false;
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, socket_path.c_str(), sizeof(addr.sun_path) - 1);
  if (connect(fd.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) != 0) return false;
  fd_ = std::move(fd);
  return true;
}

bool LinkClient::Send(const std::string& bytes, absl::Span<const int> fds) {
  if (closed_by_broker_ || !fd_) return false;
  int64_t deadline = NowMs() + kReplyTimeoutMs;
  for (;;) {
    if (reuseport::testing::SendWithFds(fd_.get(), bytes.data(), bytes.size(), fds, MSG_DONTWAIT) >= 0) break;
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      // The broker reads every link until it would block, so a full queue
      // drains unless the broker has stopped.
      FUZZ_CHECK(WaitFor(fd_.get(), POLLOUT, deadline), "the broker read nothing from a full link for 2 s");
      continue;
    }
    FUZZ_CHECK(errno == EPIPE || errno == ECONNRESET, absl::StrFormat("sendmsg: %s", strerror(errno)));
    closed_by_broker_ = true;
    FUZZ_CHECK(pipelined_, "the broker closed a link that waited for every reply (found while sending)");
    return false;
  }
  if (!outstanding_.empty()) pipelined_ = true;
  outstanding_.push_back(DescribeRequest(bytes, fds.size()));
  return true;
}

void LinkClient::AwaitReplies(const ReplyHandler& on_reply) {
  if (!fd_) return;
  int64_t deadline = NowMs() + kReplyTimeoutMs;
  while (!outstanding_.empty() && !closed_by_broker_) {
    ReceiveResult r = ReceiveRecord(fd_.get(), buffer_);
    switch (r.status) {
      case ReceiveStatus::kWouldBlock:
        FUZZ_CHECK(WaitFor(fd_.get(), POLLIN | POLLRDHUP, deadline),
                   absl::StrFormat("no reply and no close within %d ms (%d requests unanswered)", kReplyTimeoutMs,
                                   outstanding_.size()));
        continue;
      case ReceiveStatus::kClosed:
      case ReceiveStatus::kFailed:
        closed_by_broker_ = true;
        FUZZ_CHECK(pipelined_, absl::StrFormat("the broker closed a link that waited for every reply (%s)",
                                               r.status == ReceiveStatus::kFailed ? r.error.reason : "end of stream"));
        return;
      case ReceiveStatus::kRejected:
        FUZZ_CHECK(false, "the broker sent a malformed reply: " + r.error.reason);
        return;
      case ReceiveStatus::kRecord: {
        CheckReply(outstanding_.front(), r.record);
        if (!(r.record.header.flags & RP_FLAG_MORE)) outstanding_.pop_front();
        on_reply(r.record);
        deadline = NowMs() + kReplyTimeoutMs;
        continue;
      }
    }
  }
}

void LinkClient::ExpectNoUnansweredReplies() {
  if (!fd_ || closed_by_broker_) return;
  ReceiveResult r = ReceiveRecord(fd_.get(), buffer_);
  FUZZ_CHECK(r.status != ReceiveStatus::kRecord,
             absl::StrFormat("an unsolicited record: opcode %d id %d status %d", r.record.header.opcode,
                             r.record.header.request_id, r.record.header.status));
}

}  // namespace reuseport::fuzz
