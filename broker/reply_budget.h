// Bytes of replies the broker holds for links that have not read them yet,
// per uid and in total.
//
// A reply that does not fit the client's socket waits in the link's outbox.
// A client that asks and never reads would make the broker hold its replies
// for ever: a status document is megabytes on a big host, and a local user
// may open thousands of links. So what waits is charged to the link's uid and
// to the broker as a whole; a link that would go over either budget is closed
// (control_server.cc), which frees what it held.
//
// Thread-safety: none; owned by the control server on the event loop.
#ifndef REUSEPORT_BROKER_REPLY_BUDGET_H_
#define REUSEPORT_BROKER_REPLY_BUDGET_H_

#include <sys/types.h>

#include <cstdint>

#include "absl/container/flat_hash_map.h"

namespace reuseport::broker {

class ReplyBudget {
 public:
  explicit ReplyBudget(int64_t total_limit) : total_limit_(total_limit) {}

  // Charges `bytes` to uid if both its budget (`uid_limit`) and the total
  // allow; false (nothing charged) otherwise.
  bool Charge(uid_t uid, int64_t bytes, int64_t uid_limit) {
    int64_t& held = held_[uid];
    if (held + bytes > uid_limit || total_ + bytes > total_limit_) {
      if (held == 0) held_.erase(uid);
      return false;
    }
    held += bytes;
    total_ += bytes;
    return true;
  }

  void Release(uid_t uid, int64_t bytes) {
    auto it = held_.find(uid);
    if (it == held_.end()) return;
    it->second -= bytes;
    total_ -= bytes;
    if (it->second <= 0) held_.erase(it);
  }

  int64_t HeldBy(uid_t uid) const {
    auto it = held_.find(uid);
    return it == held_.end() ? 0 : it->second;
  }
  int64_t total() const { return total_; }
  int64_t total_limit() const { return total_limit_; }

 private:
  int64_t total_limit_;
  int64_t total_ = 0;
  absl::flat_hash_map<uid_t, int64_t> held_;
};

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_REPLY_BUDGET_H_
