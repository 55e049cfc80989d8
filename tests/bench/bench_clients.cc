#include "bench_clients.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>

#include "bench_servers.h"

namespace reuseport::bench {

double Now() {
  struct timespec ts {};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

Endpoint Endpoint::Loopback(uint16_t port) {
  Endpoint e;
  auto* a = reinterpret_cast<sockaddr_in*>(&e.address);
  a->sin_family = AF_INET;
  a->sin_port = htons(port);
  a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  e.length = sizeof(*a);
  return e;
}

namespace {

struct Slot {
  int fd = -1;
  int done = 0;  // bytes of the reply read
  bool sent = false;
};

void SleepUntil(double t) {
  struct timespec ts;
  ts.tv_sec = static_cast<time_t>(t);
  ts.tv_nsec = static_cast<long>((t - static_cast<double>(ts.tv_sec)) * 1e9);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

}  // namespace

TcpRun RunTcpClosedLoop(const Endpoint& target, int concurrency, double seconds) {
  TcpRun run;
  int ep = epoll_create1(EPOLL_CLOEXEC);
  std::vector<Slot> slots(static_cast<size_t>(concurrency));
  char request[kMessageBytes];
  memset(request, 'q', sizeof(request));
  auto start_one = [&](size_t i) {
    Slot& s = slots[i];
    s = Slot{};
    s.fd = socket(target.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int r = connect(s.fd, target.sockaddr_ptr(), target.length);
    if (r != 0 && errno != EINPROGRESS) {
      ++run.failed;
      close(s.fd);
      s.fd = -1;
      return;
    }
    struct epoll_event ev {};
    ev.events = EPOLLOUT | EPOLLIN;
    ev.data.u64 = i;
    epoll_ctl(ep, EPOLL_CTL_ADD, s.fd, &ev);
  };
  double begin = Now(), end = begin + seconds;
  for (size_t i = 0; i < slots.size(); ++i) start_one(i);
  struct epoll_event events[256];
  while (Now() < end) {
    int n = epoll_wait(ep, events, 256, 100);
    for (int k = 0; k < n; ++k) {
      size_t i = events[k].data.u64;
      Slot& s = slots[i];
      if (s.fd < 0) continue;
      bool finished = false, failed = false;
      if (events[k].events & (EPOLLERR | EPOLLHUP)) {
        char buf[kMessageBytes];
        ssize_t r = read(s.fd, buf, sizeof(buf));
        if (r > 0) s.done += static_cast<int>(r);
        finished = r >= 0 && s.done >= kMessageBytes;
        failed = !finished;
      } else {
        if (!s.sent && (events[k].events & EPOLLOUT)) {
          if (write(s.fd, request, sizeof(request)) == kMessageBytes) {
            s.sent = true;
            struct epoll_event ev {};
            ev.events = EPOLLIN;
            ev.data.u64 = i;
            epoll_ctl(ep, EPOLL_CTL_MOD, s.fd, &ev);
          } else if (errno != EAGAIN) {
            failed = true;
          }
        }
        if (events[k].events & EPOLLIN) {
          // Done at the server's FIN, not at the last byte of the reply: the
          // side that closes first keeps the TIME_WAIT, and on the client's
          // side those would use up the ephemeral ports within seconds at this
          // rate (then every connect() searches for a port and the rate drops
          // tenfold). Servers close after replying, as HTTP/1.0 ones do.
          char buf[kMessageBytes];
          ssize_t r = read(s.fd, buf, sizeof(buf));
          if (r > 0) {
            s.done += static_cast<int>(r);
          } else if (r == 0) {
            finished = s.done >= kMessageBytes;
            failed = !finished;
          } else if (errno != EAGAIN) {
            failed = true;
          }
        }
      }
      if (finished || failed) {
        close(s.fd);
        s.fd = -1;
        if (finished) ++run.completed;
        else ++run.failed;
        start_one(i);
      }
    }
  }
  run.seconds = Now() - begin;
  for (Slot& s : slots) {
    if (s.fd >= 0) close(s.fd);
  }
  close(ep);
  return run;
}

double TcpFirstByte(const Endpoint& target) {
  char request[kMessageBytes];
  memset(request, 'l', sizeof(request));
  int fd = socket(target.address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  // A stuck server must not stop the run: give up on a sample after a second.
  struct timeval tv = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  double t0 = Now(), us = -1;
  if (connect(fd, target.sockaddr_ptr(), target.length) == 0 && write(fd, request, sizeof(request)) == kMessageBytes) {
    char c;
    if (read(fd, &c, 1) == 1) us = (Now() - t0) * 1e6;
    // Wait for the server's FIN so the TIME_WAIT stays on its side (see above).
    char rest[kMessageBytes];
    while (read(fd, rest, sizeof(rest)) > 0) {
    }
  }
  close(fd);
  return us;
}

TcpPersistentRun RunTcpPersistent(const Endpoint& target, int connections, double warmup, double seconds) {
  TcpPersistentRun run;
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct Conn {
    int fd = -1;
    int got = 0;
    double sent_at = 0;
  };
  std::vector<Conn> conns;
  char request[kMessageBytes];
  memset(request, 'r', sizeof(request));
  for (int i = 0; i < connections; ++i) {
    int fd = socket(target.address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, target.sockaddr_ptr(), target.length) != 0) {
      close(fd);
      ++run.failed;
      continue;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    struct epoll_event ev {};
    ev.events = EPOLLIN;
    ev.data.u64 = conns.size();
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    conns.push_back({fd, 0, 0});
  }
  run.connections = static_cast<int>(conns.size());
  double begin = Now(), measure_from = begin + warmup, end = measure_from + seconds;
  for (Conn& c : conns) {
    c.sent_at = Now();
    if (write(c.fd, request, sizeof(request)) != kMessageBytes) ++run.failed;
  }
  run.latency_us.reserve(1 << 20);
  struct epoll_event events[256];
  double now = Now();
  while (now < end) {
    int n = epoll_wait(ep, events, 256, 100);
    now = Now();
    for (int k = 0; k < n; ++k) {
      Conn& c = conns[events[k].data.u64];
      if (c.fd < 0) continue;
      char buf[kMessageBytes];
      ssize_t r = read(c.fd, buf, sizeof(buf) - static_cast<size_t>(c.got));
      if (r <= 0) {
        if (r < 0 && errno == EAGAIN) continue;
        ++run.failed;
        close(c.fd);
        c.fd = -1;
        continue;
      }
      c.got += static_cast<int>(r);
      if (c.got < kMessageBytes) continue;
      c.got = 0;
      if (c.sent_at >= measure_from) {
        ++run.round_trips;
        if (run.latency_us.size() < (4u << 20)) run.latency_us.push_back(static_cast<float>((now - c.sent_at) * 1e6));
      }
      c.sent_at = now;
      if (write(c.fd, request, sizeof(request)) != kMessageBytes) {
        ++run.failed;
        close(c.fd);
        c.fd = -1;
      }
    }
  }
  run.seconds = std::max(0.0, now - measure_from);
  for (Conn& c : conns) {
    if (c.fd >= 0) close(c.fd);
  }
  close(ep);
  return run;
}

// `flows` UDP sockets connected to target (one source port each), with send
// buffers large enough that the sender, not its buffer, sets the pace.
std::vector<int> ConnectedSenders(const Endpoint& target, int flows) {
  std::vector<int> fds;
  for (int f = 0; f < flows; ++f) {
    int fd = socket(target.address.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int big = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big));
    connect(fd, target.sockaddr_ptr(), target.length);
    fds.push_back(fd);
  }
  return fds;
}

UdpRun BlastUdp(const Endpoint& target, int flows, int payload, double seconds, double rate) {
  UdpRun run;
  run.target_rate = rate;
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);  // sleep to the deadline, not 50 µs past it
  // A paced sender is the load whose rate the test fixes: on a small machine it
  // competes for CPU with the receivers it feeds, so let it win (for this thread
  // and this run only), or the receivers would set the rate.
  pid_t tid = static_cast<pid_t>(syscall(SYS_gettid));
  int old_nice = getpriority(PRIO_PROCESS, static_cast<id_t>(tid));
  if (rate > 0) setpriority(PRIO_PROCESS, static_cast<id_t>(tid), -10);
  std::vector<int> fds = ConnectedSenders(target, flows);
  // Paced: wake up when about 50 us of traffic is due and send what is due
  // (up to 16 per call), so the receivers see a steady stream, not bursts. A
  // late wake-up is caught up at once; falling further behind than 10 ms of
  // traffic (the sender cannot keep up) is forgiven rather than sent as a burst,
  // and shows as an actual rate below the target.
  const int kMaxBatch = 16;
  double wake_batch = rate > 0 ? std::clamp(rate * 50e-6, 1.0, static_cast<double>(kMaxBatch)) : kMaxBatch;
  const double burst_cap = rate > 0 ? std::max(4.0 * kMaxBatch, rate * 10e-3) : 0;
  std::vector<char> data(static_cast<size_t>(payload), 'u');
  struct iovec iov = {data.data(), data.size()};
  struct mmsghdr msgs[kMaxBatch];
  for (auto& m : msgs) {
    memset(&m, 0, sizeof(m));
    m.msg_hdr.msg_iov = &iov;
    m.msg_hdr.msg_iovlen = 1;
  }
  double begin = Now(), end = begin + seconds;
  double forgiven = 0;
  size_t next = 0;
  while (true) {
    double now = Now();
    if (now >= end) break;
    int batch = kMaxBatch;
    if (rate > 0) {
      double behind = (now - begin) * rate - forgiven - static_cast<double>(run.sent);
      if (behind < 1) {
        SleepUntil(std::min(end, begin + (static_cast<double>(run.sent) + forgiven + wake_batch) / rate));
        continue;
      }
      if (behind > burst_cap) {
        forgiven += behind - burst_cap;
        behind = burst_cap;
      }
      batch = std::min(kMaxBatch, static_cast<int>(behind));
    }
    int n = sendmmsg(fds[next], msgs, static_cast<unsigned>(batch), 0);
    if (n > 0) run.sent += static_cast<uint64_t>(n);
    next = (next + 1) % fds.size();
  }
  run.seconds = Now() - begin;
  if (rate > 0) setpriority(PRIO_PROCESS, static_cast<id_t>(tid), old_nice);
  for (int fd : fds) close(fd);
  return run;
}

UdpRun FloodUdp(const Endpoint& target, int flows, int payload, double seconds, bool* gso) {
  constexpr int kSegments = 64;
  UdpRun run;
  std::vector<int> fds = ConnectedSenders(target, flows);
  *gso = true;
  for (int fd : fds) {
    int segment = payload;
    if (setsockopt(fd, IPPROTO_UDP, 103 /* UDP_SEGMENT */, &segment, sizeof(segment)) != 0) *gso = false;
  }
  std::vector<char> data(static_cast<size_t>(payload) * kSegments, 'f');
  struct iovec one = {data.data(), static_cast<size_t>(payload)};
  struct mmsghdr msgs[kSegments];
  for (auto& m : msgs) {
    memset(&m, 0, sizeof(m));
    m.msg_hdr.msg_iov = &one;
    m.msg_hdr.msg_iovlen = 1;
  }
  double begin = Now(), end = begin + seconds;
  size_t next = 0;
  for (int round = 0;; ++round) {
    if ((round & 15) == 0 && Now() >= end) break;
    int fd = fds[next];
    next = (next + 1) % fds.size();
    if (*gso) {
      ssize_t n = send(fd, data.data(), data.size(), 0);
      if (n == static_cast<ssize_t>(data.size())) {
        run.sent += kSegments;
      } else if (n < 0 && errno != EAGAIN && errno != ENOBUFS) {
        *gso = false;  // refused after all (EIO from a device without it): sendmmsg from here on
      }
      continue;
    }
    int n = sendmmsg(fd, msgs, kSegments, 0);
    if (n > 0) run.sent += static_cast<uint64_t>(n);
  }
  run.seconds = Now() - begin;
  for (int fd : fds) close(fd);
  return run;
}

UdpFlowSet::~UdpFlowSet() {
  for (int fd : fds_) close(fd);
  if (epoll_ >= 0) close(epoll_);
}

bool UdpFlowSet::Open(const Endpoint& target, int flows) {
  epoll_ = epoll_create1(EPOLL_CLOEXEC);
  for (int f = 0; f < flows; ++f) {
    int fd = socket(target.address.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, target.sockaddr_ptr(), target.length) != 0) {
      if (fd >= 0) close(fd);
      return false;
    }
    struct epoll_event ev {};
    ev.events = EPOLLIN;
    ev.data.u64 = fds_.size();
    epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev);
    fds_.push_back(fd);
  }
  return true;
}

std::vector<int> UdpFlowSet::Probe(int rounds, int round_ms) {
  std::vector<int> ids(fds_.size(), -1);
  // Drain late answers of an earlier probe first.
  char buf[64];
  for (int fd : fds_) {
    while (recv(fd, buf, sizeof(buf), 0) > 0) {
    }
  }
  size_t answered = 0;
  for (int round = 0; round < rounds && answered < fds_.size(); ++round) {
    for (size_t i = 0; i < fds_.size(); ++i) {
      if (ids[i] < 0) (void)send(fds_[i], "?", 1, 0);
    }
    double end = Now() + round_ms * 1e-3;
    struct epoll_event events[256];
    while (answered < fds_.size()) {
      int left = static_cast<int>((end - Now()) * 1000);
      if (left <= 0) break;
      int n = epoll_wait(epoll_, events, 256, left);
      for (int k = 0; k < n; ++k) {
        size_t i = events[k].data.u64;
        ssize_t r;
        while ((r = recv(fds_[i], buf, sizeof(buf) - 1, 0)) > 0) {
          buf[r] = '\0';
          if (ids[i] < 0) ++answered;
          ids[i] = atoi(buf);
        }
      }
    }
  }
  return ids;
}

}  // namespace reuseport::bench
