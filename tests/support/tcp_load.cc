// RunTcpLoad: many short connections in flight at once from one thread.
#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "load_client.h"
#include "load_target.h"

namespace reuseport::testing {
namespace {

using load_internal::AddExample;
using load_internal::MillisecondsUntil;

enum class Stage { kConnecting, kSending, kReceiving, kAwaitingClose };

const char* StageName(Stage stage) {
  switch (stage) {
    case Stage::kConnecting: return "connecting";
    case Stage::kSending: return "sending";
    case Stage::kReceiving: return "awaiting reply";
    case Stage::kAwaitingClose: return "awaiting close after the reply";
  }
  return "?";
}

struct Connection {
  int fd = -1;  // -1: slot free
  std::string token;
  std::string request;
  size_t sent = 0;
  std::string received;
  std::string line;  // the reply line, once complete
  Stage stage = Stage::kConnecting;
  absl::Time deadline;
};

constexpr size_t kMaxReplyLine = 4096;

// One run of RunTcpLoad. Not thread-safe; lives on the caller's stack.
class TcpLoadRun {
 public:
  TcpLoadRun(const TcpLoadOptions& options, const SocketAddress& target, TcpLoadResult& result)
      : options_(options), target_(target), result_(result) {}

  void Run() {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) {
      FailAllUnstarted(absl::StrCat("epoll_create1: ", std::strerror(errno)));
      return;
    }
    int concurrency = std::max(1, options_.concurrency);
    slots_.resize(static_cast<size_t>(concurrency));
    for (int i = concurrency - 1; i >= 0; i--) free_slots_.push_back(i);
    std::vector<epoll_event> events(slots_.size());
    for (;;) {
      while (!free_slots_.empty() && next_index_ < options_.connections) {
        int slot = free_slots_.back();
        free_slots_.pop_back();
        Start(slot, next_index_++);
      }
      if (free_slots_.size() == slots_.size() && next_index_ >= options_.connections) break;
      absl::Time now = absl::Now();
      absl::Time earliest = absl::InfiniteFuture();
      for (const Connection& c : slots_) {
        if (c.fd >= 0) earliest = std::min(earliest, c.deadline);
      }
      int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()),
                         MillisecondsUntil(earliest, now));
      for (int i = 0; i < n; i++) OnEvent(static_cast<int>(events[static_cast<size_t>(i)].data.u32),
                                          events[static_cast<size_t>(i)].events);
      ExpireTimedOut(absl::Now());
    }
    close(epoll_fd_);
  }

 private:
  void Start(int slot, int index) {
    Connection& c = slots_[static_cast<size_t>(slot)];
    c = Connection{};
    c.token = absl::StrCat(options_.token_prefix, index);
    c.request = absl::StrCat("HELLO ", c.token, "\n");
    c.deadline = absl::Now() + options_.connection_timeout;
    result_.tokens.push_back(c.token);
    result_.attempted++;
    c.fd = socket(target_.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) {
      int error = errno;
      Fail(slot, result_.other, "other", absl::StrCat("socket: ", std::strerror(error)));
      return;
    }
    epoll_event interest{};
    interest.events = EPOLLOUT;
    interest.data.u32 = static_cast<uint32_t>(slot);
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c.fd, &interest) != 0) {
      int error = errno;
      Fail(slot, result_.other, "other", absl::StrCat("epoll_ctl: ", std::strerror(error)));
      return;
    }
    if (connect(c.fd, target_.get(), target_.size()) == 0) {
      c.stage = Stage::kSending;  // epoll reports it writable at once
    } else if (errno != EINPROGRESS) {
      FailErrno(slot, errno, "connect");
    }
  }

  void OnEvent(int slot, uint32_t events) {
    Connection& c = slots_[static_cast<size_t>(slot)];
    if (c.fd < 0) return;
    if (c.stage == Stage::kConnecting) {
      int error = 0;
      socklen_t len = sizeof(error);
      if (getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0) error = errno;
      if (error != 0) return FailErrno(slot, error, "connect");
      if ((events & EPOLLOUT) == 0) return;
      c.stage = Stage::kSending;
    }
    if (c.stage == Stage::kSending) {
      while (c.sent < c.request.size()) {
        ssize_t n = send(c.fd, c.request.data() + c.sent, c.request.size() - c.sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        if (n < 0) return FailErrno(slot, errno, "send");
        c.sent += static_cast<size_t>(n);
      }
      c.stage = Stage::kReceiving;
      if (options_.requests_sent != nullptr) options_.requests_sent->fetch_add(1);
      epoll_event interest{};
      interest.events = EPOLLIN;
      interest.data.u32 = static_cast<uint32_t>(slot);
      if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &interest) != 0) {
        return FailErrno(slot, errno, "epoll_ctl");
      }
      return;  // wait for the reply
    }
    char buf[1024];
    for (;;) {
      ssize_t n = recv(c.fd, buf, sizeof(buf), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      if (n < 0) return FailErrno(slot, errno, "recv");
      if (n == 0 && c.stage == Stage::kAwaitingClose) return Complete(slot);
      if (n == 0) {
        return Fail(slot, result_.closed, "closed",
                    c.received.empty()
                        ? std::string("closed without a reply")
                        : absl::StrCat("closed after a partial reply '", c.received, "'"));
      }
      c.received.append(buf, static_cast<size_t>(n));
      if (c.stage == Stage::kAwaitingClose) {
        return Fail(slot, result_.bad_reply, "bad reply",
                    absl::StrCat("data after the reply line: '", c.received, "'"));
      }
      size_t newline = c.received.find('\n');
      if (newline != std::string::npos) {
        c.line = c.received.substr(0, newline);
        c.received.erase(0, newline + 1);
        if (!CheckLine(slot)) return;
        if (!options_.await_close) return Complete(slot);
        c.stage = Stage::kAwaitingClose;
        if (!c.received.empty()) {
          return Fail(slot, result_.bad_reply, "bad reply",
                      absl::StrCat("data after the reply line: '", c.received, "'"));
        }
      }
      if (c.received.size() > kMaxReplyLine) {
        return Fail(slot, result_.bad_reply, "bad reply", "reply line too long");
      }
    }
  }

  // Validates the reply line; on failure the connection is released.
  bool CheckLine(int slot) {
    Connection& c = slots_[static_cast<size_t>(slot)];
    if (!c.line.empty() && c.line.back() == '\r') c.line.pop_back();
    size_t space = c.line.find(' ');
    std::string responder = c.line.substr(0, space);
    std::string rest = space == std::string::npos ? "" : c.line.substr(space + 1);
    if (responder.empty() || rest.substr(0, rest.find(' ')) != c.token) {
      Fail(slot, result_.bad_reply, "bad reply", absl::StrCat("reply '", c.line, "'"));
      return false;
    }
    return true;
  }

  void Complete(int slot) {
    Connection& c = slots_[static_cast<size_t>(slot)];
    size_t space = c.line.find(' ');
    std::string responder = c.line.substr(0, space);
    result_.successes++;
    result_.per_member[responder]++;
    result_.replies[c.token] = TcpReply{responder, c.line.substr(space + 1)};
    Release(slot);
  }

  void ExpireTimedOut(absl::Time now) {
    for (size_t slot = 0; slot < slots_.size(); slot++) {
      Connection& c = slots_[slot];
      if (c.fd >= 0 && c.deadline <= now) {
        Fail(static_cast<int>(slot), result_.timeout, "timeout",
             absl::StrCat("no reply within ", absl::FormatDuration(options_.connection_timeout),
                          " (", StageName(c.stage), ", ", c.received.size(), " bytes received)"));
      }
    }
  }

  void FailErrno(int slot, int error, const char* call) {
    std::string detail = absl::StrCat(call, ": ", std::strerror(error));
    switch (error) {
      case ECONNREFUSED: return Fail(slot, result_.refused, "refused", detail);
      case ECONNRESET:
      case EPIPE: return Fail(slot, result_.reset, "reset", detail);
      case ETIMEDOUT: return Fail(slot, result_.timeout, "timeout", detail);
      default: return Fail(slot, result_.other, "other", detail);
    }
  }

  void Fail(int slot, int& counter, const char* kind, const std::string& detail) {
    counter++;
    AddExample(result_.failure_examples,
               absl::StrCat(slots_[static_cast<size_t>(slot)].token, ": ", kind, ": ", detail));
    Release(slot);
  }

  void Release(int slot) {
    Connection& c = slots_[static_cast<size_t>(slot)];
    if (c.fd >= 0) close(c.fd);  // also removes it from the epoll set
    c.fd = -1;
    free_slots_.push_back(slot);
  }

  void FailAllUnstarted(const std::string& detail) {
    for (; next_index_ < options_.connections; next_index_++) {
      result_.attempted++;
      result_.other++;
      AddExample(result_.failure_examples, detail);
    }
  }

  const TcpLoadOptions& options_;
  const SocketAddress& target_;
  TcpLoadResult& result_;
  int epoll_fd_ = -1;
  int next_index_ = 0;
  std::vector<Connection> slots_;
  std::vector<int> free_slots_;
};

std::atomic<int> run_counter{0};

}  // namespace

TcpLoadResult RunTcpLoad(const TcpLoadOptions& options) {
  TcpLoadResult result;
  absl::Time start = absl::Now();
  TcpLoadOptions effective = options;
  if (effective.token_prefix.empty()) effective.token_prefix = absl::StrCat("r", ++run_counter, "-");
  absl::StatusOr<SocketAddress> target =
      load_internal::ResolveTarget(options.host, options.port, options.address);
  if (!target.ok()) {
    result.attempted = result.other = options.connections;
    AddExample(result.failure_examples, absl::StrCat("bad target: ", target.status().ToString()));
  } else {
    result.target = target->ToString();
    TcpLoadRun(effective, *target, result).Run();
  }
  result.elapsed = absl::Now() - start;
  return result;
}

std::string TcpLoadResult::Summary() const {
  std::vector<std::string> members;
  for (const auto& [id, count] : per_member) members.push_back(absl::StrCat(id, "=", count));
  return absl::StrCat(
      "TCP load to ", target, ": ", attempted, " attempted, ", successes, " ok, ", failures(),
      " failed (refused ", refused, ", reset ", reset, ", timeout ", timeout, ", closed ", closed,
      ", bad reply ", bad_reply, ", other ", other, ") in ", absl::FormatDuration(elapsed),
      "; per member: {", absl::StrJoin(members, ", "), "}",
      failure_examples.empty() ? "" : "; examples:\n  ",
      absl::StrJoin(failure_examples, "\n  "));
}

bool WaitForCount(const std::atomic<int>& counter, int want, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (counter.load() < want) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

}  // namespace reuseport::testing
