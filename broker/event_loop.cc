#include "event_loop.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "absl/strings/str_format.h"
#include "log.h"

namespace reuseport::broker {

EventLoop::EventLoop() = default;

EventLoop::~EventLoop() {
  for (Watch* w : live_) delete w;
}

absl::Status EventLoop::Init() {
  epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) return absl::InternalError(absl::StrFormat("epoll_create1: %s", strerror(errno)));
  int p[2];
  if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) return absl::InternalError(absl::StrFormat("pipe2: %s", strerror(errno)));
  wake_read_.reset(p[0]);
  wake_write_.reset(p[1]);
  struct epoll_event ev {};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // the wake pipe
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_read_.get(), &ev) != 0) {
    return absl::InternalError(absl::StrFormat("epoll_ctl: %s", strerror(errno)));
  }
  return absl::OkStatus();
}

EventLoop::Watch* EventLoop::Add(int fd, uint32_t events, Callback callback) {
  auto* watch = new Watch{fd, events, false, std::move(callback)};
  struct epoll_event ev {};
  ev.events = events;
  ev.data.ptr = watch;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    Log(Severity::kError, "epoll_ctl(ADD, fd %d): %s", fd, strerror(errno));
    delete watch;
    return nullptr;
  }
  live_.insert(watch);
  return watch;
}

void EventLoop::Modify(Watch* watch, uint32_t events) {
  if (watch == nullptr || watch->dead || watch->events == events) return;
  struct epoll_event ev {};
  ev.events = events;
  ev.data.ptr = watch;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, watch->fd, &ev) != 0) {
    Log(Severity::kError, "epoll_ctl(MOD, fd %d): %s", watch->fd, strerror(errno));
    return;
  }
  watch->events = events;
}


void EventLoop::Remove(Watch* watch) {
  if (watch == nullptr || watch->dead) return;
  epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, watch->fd, nullptr);
  watch->dead = true;
  watch->callback = nullptr;
  live_.erase(watch);
  dead_.emplace_back(watch);
}

void EventLoop::After(int64_t delay_ms, std::function<void()> callback) {
  timers_.push(Timer{NowMs() + delay_ms, timer_seq_++, std::move(callback)});
}

int64_t EventLoop::NowMs() {
  struct timespec ts {};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

int EventLoop::NextTimeoutMs() const {
  if (timers_.empty()) return -1;
  int64_t left = timers_.top().due_ms - NowMs();
  return left < 0 ? 0 : static_cast<int>(left > 60000 ? 60000 : left);
}

void EventLoop::RunDueTimers() {
  int64_t now = NowMs();
  while (!timers_.empty() && timers_.top().due_ms <= now) {
    auto callback = std::move(const_cast<Timer&>(timers_.top()).callback);
    timers_.pop();
    callback();
  }
}

void EventLoop::Run() {
  constexpr int kBatch = 64;
  struct epoll_event events[kBatch];
  while (!stopping_.load(std::memory_order_relaxed)) {
    int n = epoll_wait(epoll_.get(), events, kBatch, NextTimeoutMs());
    if (n < 0) {
      if (errno == EINTR) continue;
      Log(Severity::kError, "epoll_wait: %s", strerror(errno));
      return;
    }
    for (int i = 0; i < n && !stopping_.load(std::memory_order_relaxed); ++i) {
      auto* watch = static_cast<Watch*>(events[i].data.ptr);
      if (watch == nullptr) {
        char drain[64];
        while (read(wake_read_.get(), drain, sizeof(drain)) > 0) {
        }
        if (after_wake_) after_wake_();
        continue;
      }
      if (!watch->dead) watch->callback(events[i].events);
    }
    dead_.clear();
    RunDueTimers();
  }
}

void EventLoop::Wake() {
  char byte = 1;
  ssize_t ignored = write(wake_write_.get(), &byte, 1);
  (void)ignored;
}

void EventLoop::Stop() {
  stopping_.store(true, std::memory_order_relaxed);
  char byte = 1;
  ssize_t ignored = write(wake_write_.get(), &byte, 1);
  (void)ignored;
}

}  // namespace reuseport::broker
