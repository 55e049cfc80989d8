#include "bench_clients.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "bench_servers.h"

namespace reuseport::bench {

namespace {

double Now() {
  struct timespec ts {};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Slot {
  int fd = -1;
  int done = 0;  // bytes of the reply read
  bool sent = false;
};

}  // namespace

TcpRun RunTcpClosedLoop(const sockaddr_storage& target, socklen_t len, int concurrency, double seconds) {
  TcpRun run;
  int ep = epoll_create1(EPOLL_CLOEXEC);
  std::vector<Slot> slots(static_cast<size_t>(concurrency));
  char request[kMessageBytes];
  memset(request, 'q', sizeof(request));
  auto start_one = [&](size_t i) {
    Slot& s = slots[i];
    s = Slot{};
    s.fd = socket(target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int r = connect(s.fd, reinterpret_cast<const sockaddr*>(&target), len);
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
        finished = s.done >= kMessageBytes;
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
          char buf[kMessageBytes];
          ssize_t r = read(s.fd, buf, sizeof(buf));
          if (r > 0) s.done += static_cast<int>(r);
          else if (r == 0 || errno != EAGAIN) failed = s.done < kMessageBytes;
          finished = s.done >= kMessageBytes;
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

std::vector<double> MeasureTcpFirstByte(const sockaddr_storage& target, socklen_t len, int count) {
  std::vector<double> samples;
  char request[kMessageBytes];
  memset(request, 'l', sizeof(request));
  for (int i = 0; i < count; ++i) {
    int fd = socket(target.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    double t0 = Now();
    if (connect(fd, reinterpret_cast<const sockaddr*>(&target), len) == 0 &&
        write(fd, request, sizeof(request)) == kMessageBytes) {
      char c;
      if (read(fd, &c, 1) == 1) samples.push_back((Now() - t0) * 1e6);
    }
    close(fd);
  }
  return samples;
}

UdpRun BlastUdp(const sockaddr_storage& target, socklen_t len, int flows, int payload, double seconds, double rate) {
  UdpRun run;
  std::vector<int> fds;
  for (int f = 0; f < flows; ++f) {
    int fd = socket(target.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int big = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big));
    connect(fd, reinterpret_cast<const sockaddr*>(&target), len);
    fds.push_back(fd);
  }
  constexpr int kBatch = 16;
  std::vector<char> data(static_cast<size_t>(payload), 'u');
  struct iovec iov = {data.data(), data.size()};
  struct mmsghdr msgs[kBatch];
  for (auto& m : msgs) {
    memset(&m, 0, sizeof(m));
    m.msg_hdr.msg_iov = &iov;
    m.msg_hdr.msg_iovlen = 1;
  }
  double begin = Now(), end = begin + seconds;
  size_t next = 0;
  while (true) {
    double now = Now();
    if (now >= end) break;
    if (rate > 0 && static_cast<double>(run.sent) > (now - begin) * rate) {
      struct timespec pause = {0, 50 * 1000};
      nanosleep(&pause, nullptr);
      continue;
    }
    int n = sendmmsg(fds[next], msgs, kBatch, 0);
    if (n > 0) run.sent += static_cast<uint64_t>(n);
    next = (next + 1) % fds.size();
  }
  run.seconds = Now() - begin;
  for (int fd : fds) close(fd);
  return run;
}

}  // namespace reuseport::bench
