// The client end of one link to the broker under test, keeping the requests
// it is owed replies for. Every wait is bounded by kReplyTimeoutMs: a broker
// that neither answers nor closes the link by then counts as hung (a trap).
//
// Replies are checked against their requests (reply_check.h) in order: one
// loop serves a link, so replies come back in request order.
#ifndef REUSEPORT_TESTS_FUZZ_LINK_CLIENT_H_
#define REUSEPORT_TESTS_FUZZ_LINK_CLIENT_H_

#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "reply_check.h"
#include "unique_fd.h"
#include "wire.h"

namespace reuseport::fuzz {

class LinkClient {
 public:
  static constexpr int kReplyTimeoutMs = 10000;  // a loaded 2-vCPU host under ASan; a reply ends the wait
  using ReplyHandler = std::function<void(reuseport::broker::Record& reply)>;

  bool Connect(const std::string& socket_path);
  bool connected() const { return fd_.valid(); }
  bool closed_by_broker() const { return closed_by_broker_; }

  // Sends one record; false (and closed_by_broker()) when the broker has
  // already closed the link.
  bool Send(const std::string& bytes, absl::Span<const int> fds);

  // Reads until every request sent has its final reply or the broker closes
  // the link. A client that always waited for its replies before sending more
  // must never be disconnected: that is checked here too.
  void AwaitReplies(const ReplyHandler& on_reply);

  // Traps if a record arrives that no request asked for.
  void ExpectNoUnansweredReplies();

  void Close() { fd_.reset(); }

 private:
  reuseport::broker::UniqueFd fd_;
  std::deque<SentRequest> outstanding_;
  bool pipelined_ = false;  // a request was sent before the previous one's reply
  bool closed_by_broker_ = false;
  std::vector<char> buffer_;
};

}  // namespace reuseport::fuzz

#endif  // REUSEPORT_TESTS_FUZZ_LINK_CLIENT_H_
