// A single-threaded epoll loop with timers.
//
// Watches are removed lazily: Remove() only marks one dead, and it is freed
// after the current batch of events, so a callback may remove any watch
// (including its own, or one whose event is still pending in this batch).
//
// Thread-safety: none; everything runs on the thread that calls Run(). The
// only cross-thread entry is Stop() (async-signal-safe, via a self-pipe).
#ifndef REUSEPORT_BROKER_EVENT_LOOP_H_
#define REUSEPORT_BROKER_EVENT_LOOP_H_

#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "unique_fd.h"

namespace reuseport::broker {

class EventLoop {
 public:
  using Callback = std::function<void(uint32_t events)>;
  struct Watch;

  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  absl::Status Init();

  // Watches fd for `events` (EPOLLIN, EPOLLOUT...); fd stays owned by the caller.
  Watch* Add(int fd, uint32_t events, Callback callback);
  void Modify(Watch* watch, uint32_t events);
  void Remove(Watch* watch);

  // Runs `callback` once after `delay_ms`.
  void After(int64_t delay_ms, std::function<void()> callback);

  // Runs until Stop().
  void Run();
  void Stop();  // async-signal-safe
  // Makes Run() call the after-wake hook soon (async-signal-safe).
  void Wake();
  void SetAfterWake(std::function<void()> hook) { after_wake_ = std::move(hook); }

  static int64_t NowMs();

 private:
  struct Timer {
    int64_t due_ms;
    uint64_t seq;
    std::function<void()> callback;
    bool operator>(const Timer& o) const { return due_ms != o.due_ms ? due_ms > o.due_ms : seq > o.seq; }
  };

  void RunDueTimers();
  int NextTimeoutMs() const;

  UniqueFd epoll_;
  UniqueFd wake_read_;
  UniqueFd wake_write_;
  std::vector<std::unique_ptr<Watch>> dead_;
  absl::flat_hash_set<Watch*> live_;  // freed with the loop if never removed
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_;
  uint64_t timer_seq_ = 0;
  std::atomic<bool> stopping_{false};  // set from signal handlers and other threads
  std::function<void()> after_wake_;
};

struct EventLoop::Watch {
  int fd;
  uint32_t events;
  bool dead = false;
  Callback callback;
};

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_EVENT_LOOP_H_
