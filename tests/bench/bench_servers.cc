#include "bench_servers.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "worker_counters.h"

namespace reuseport::bench {

namespace {

volatile sig_atomic_t g_stop = 0;

void OnTerm(int) { g_stop = 1; }

void InstallStop() {
  struct sigaction sa {};
  sa.sa_handler = OnTerm;  // no SA_RESTART: blocking calls return EINTR
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

int Open(const ServerOptions& o, int type) {
  struct sockaddr_storage ss {};
  socklen_t len;
  int family;
  if (strchr(o.host.c_str(), ':') != nullptr) {
    auto* a = reinterpret_cast<struct sockaddr_in6*>(&ss);
    a->sin6_family = family = AF_INET6;
    a->sin6_port = htons(o.port);
    inet_pton(AF_INET6, o.host.c_str(), &a->sin6_addr);
    len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<struct sockaddr_in*>(&ss);
    a->sin_family = family = AF_INET;
    a->sin_port = htons(o.port);
    inet_pton(AF_INET, o.host.c_str(), &a->sin_addr);
    len = sizeof(*a);
  }
  int fd = socket(family, type | SOCK_CLOEXEC | (o.kind == ServerKind::kTcpLong ? SOCK_NONBLOCK : 0), 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (o.reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    fprintf(stderr, "bench server: SO_REUSEPORT: %s\n", strerror(errno));
    return -1;
  }
  if (type == SOCK_DGRAM) {
    int big = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
  }
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&ss), len) != 0) {
    fprintf(stderr, "bench server: bind: %s\n", strerror(errno));
    return -1;
  }
  if (type == SOCK_STREAM && listen(fd, 4096) != 0) {
    fprintf(stderr, "bench server: listen: %s\n", strerror(errno));
    return -1;
  }
  return fd;
}

void ReportReady(int fd) {
  struct sockaddr_storage ss {};
  socklen_t len = sizeof(ss);
  getsockname(fd, reinterpret_cast<struct sockaddr*>(&ss), &len);
  uint16_t port = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<struct sockaddr_in6*>(&ss)->sin6_port
                                                 : reinterpret_cast<struct sockaddr_in*>(&ss)->sin_port);
  char line[16];
  int n = snprintf(line, sizeof(line), "%u\n", port);
  if (write(3, line, static_cast<size_t>(n)) != n) perror("ready fd");
  close(3);
}

WorkerCounters g_counters;

void AcceptLoop(int listener, int slot) {
  char buf[kMessageBytes];
  while (!g_stop) {
    int c = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    ssize_t got = 0;
    while (got < kMessageBytes) {
      ssize_t n = read(c, buf + got, sizeof(buf) - static_cast<size_t>(got));
      if (n <= 0) break;
      got += n;
    }
    if (got == kMessageBytes && write(c, buf, sizeof(buf)) == kMessageBytes) g_counters.Add(slot, 1);
    close(c);
  }
}

// Persistent connections: one epoll loop over the listener and every
// connection; each complete 64-byte request is echoed at once.
void EchoLoop(int listener, int slot) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev {};
  ev.events = EPOLLIN;
  ev.data.fd = listener;
  epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
  std::vector<int> have;  // bytes of the current request, by fd
  char buf[kMessageBytes];
  struct epoll_event events[128];
  while (!g_stop) {
    int n = epoll_wait(ep, events, 128, -1);
    for (int k = 0; k < n; ++k) {
      int fd = events[k].data.fd;
      if (fd == listener) {
        for (;;) {
          int c = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) break;
          if (static_cast<size_t>(c) >= have.size()) have.resize(static_cast<size_t>(c) + 64, 0);
          have[static_cast<size_t>(c)] = 0;
          struct epoll_event cev {};
          cev.events = EPOLLIN;
          cev.data.fd = c;
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      int& got = have[static_cast<size_t>(fd)];
      for (;;) {
        ssize_t r = read(fd, buf + got, sizeof(buf) - static_cast<size_t>(got));
        if (r > 0) {
          got += static_cast<int>(r);
          if (got < kMessageBytes) continue;
          got = 0;
          if (write(fd, buf, sizeof(buf)) == kMessageBytes) g_counters.Add(slot, 1);
          continue;
        }
        if (r == 0 || errno != EAGAIN) {
          epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
          close(fd);
        }
        break;
      }
    }
  }
  close(ep);
}

void ReceiveLoop(int fd, int slot) {
  constexpr int kBatch = 32;
  static char bufs[kBatch][2048];
  struct mmsghdr msgs[kBatch];
  struct iovec iov[kBatch];
  while (!g_stop) {
    for (int i = 0; i < kBatch; ++i) {
      iov[i] = {bufs[i], sizeof(bufs[i])};
      memset(&msgs[i], 0, sizeof(msgs[i]));
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(fd, msgs, kBatch, MSG_WAITFORONE, nullptr);
    if (n > 0) g_counters.Add(slot, static_cast<uint64_t>(n));
  }
}

void IdentLoop(int fd, int slot, int id) {
  char buf[2048];
  char reply[32];
  int len = snprintf(reply, sizeof(reply), "%d", id);
  while (!g_stop) {
    struct sockaddr_storage from {};
    socklen_t from_len = sizeof(from);
    ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, reinterpret_cast<struct sockaddr*>(&from), &from_len);
    if (n < 0) continue;
    if (sendto(fd, reply, static_cast<size_t>(len), 0, reinterpret_cast<struct sockaddr*>(&from), from_len) == len) {
      g_counters.Add(slot, 1);
    }
  }
}

void Serve(const ServerOptions& o, int fd, int slot) {
  switch (o.kind) {
    case ServerKind::kTcpShort: AcceptLoop(fd, slot); break;
    case ServerKind::kTcpLong: EchoLoop(fd, slot); break;
    case ServerKind::kUdpCount: ReceiveLoop(fd, slot); break;
    case ServerKind::kUdpIdent: IdentLoop(fd, slot, o.id); break;
  }
}

// Classic prefork: the parent binds, forks the workers, reports ready and waits
// for SIGTERM, which it passes on.
int ForkWorkers(const ServerOptions& o, int fd) {
  std::vector<pid_t> children;
  for (int i = 0; i < o.shared_workers; ++i) {
    pid_t p = fork();
    if (p == 0) {
      InstallStop();
      Serve(o, fd, o.slot + i);
      _exit(0);
    }
    if (p > 0) children.push_back(p);
  }
  ReportReady(fd);
  InstallStop();
  while (!g_stop) pause();
  for (pid_t p : children) kill(p, SIGTERM);
  for (pid_t p : children) waitpid(p, nullptr, 0);
  return 0;
}

double Seconds(clockid_t clock) {
  struct timespec ts {};
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

int RunServer(const ServerOptions& o) {
  if (!o.counters_path.empty() && !g_counters.Map(o.counters_path, false)) {
    fprintf(stderr, "bench server: cannot map %s\n", o.counters_path.c_str());
    return 2;
  }
  bool tcp = o.kind == ServerKind::kTcpShort || o.kind == ServerKind::kTcpLong;
  int fd = Open(o, tcp ? SOCK_STREAM : SOCK_DGRAM);
  if (fd < 0) return 2;
  if (o.shared_workers > 0) return ForkWorkers(o, fd);
  ReportReady(fd);
  InstallStop();
  Serve(o, fd, o.slot);
  return 0;
}

int RunReadLoop(const std::string& kind, long count, int loops, const std::string& scratch_dir) {
  constexpr long kChunk = 10000;
  long fill_bytes = std::max(count, kChunk);
  std::vector<char> fill(static_cast<size_t>(fill_bytes), kind == "pipe" ? 'p' : 'f');
  int fd = -1, pipe_in = -1;
  if (kind == "pipe") {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return 2;
    // Room for every byte at once, so the timed loop only reads (root may
    // exceed pipe-max-size).
    if (fcntl(p[1], F_SETPIPE_SZ, static_cast<int>(fill_bytes) + 4096) < static_cast<int>(fill_bytes)) {
      fprintf(stderr, "read loop: cannot make the pipe hold %ld bytes: %s\n", fill_bytes, strerror(errno));
      return 2;
    }
    fd = p[0];
    pipe_in = p[1];
  } else if (kind == "file") {
    std::string path = scratch_dir + "/read-loop." + std::to_string(getpid());
    int w = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (w < 0 || write(w, fill.data(), fill.size()) != static_cast<ssize_t>(fill.size())) return 2;
    close(w);
    fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    unlink(path.c_str());
  } else {
    return 2;
  }
  auto refill = [&](long bytes) {
    if (pipe_in < 0) {
      lseek(fd, 0, SEEK_SET);
      return true;
    }
    for (long off = 0; off < bytes;) {
      ssize_t n = write(pipe_in, fill.data() + off, static_cast<size_t>(bytes - off));
      if (n <= 0) return false;
      off += n;
    }
    return true;
  };
  using ReadFn = ssize_t (*)(int, void*, size_t);
  // libc's own read(), past whatever is preloaded: the same call without the
  // shim, in the same process.
  void* libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
  ReadFn direct = libc != nullptr ? reinterpret_cast<ReadFn>(dlsym(libc, "read")) : nullptr;
  if (direct == nullptr) {
    fprintf(stderr, "read loop: cannot find libc's read\n");
    return 2;
  }

  // 1. The loop as a program runs it: `count` reads, `loops` times; the
  // fastest counts (interruptions and preemption only ever add time).
  double best_wall = 1e30, best_cpu = 1e30;
  for (int loop = 0; loop < loops; ++loop) {
    if (!refill(count)) return 2;
    char c;
    long ok = 0;
    double wall0 = Seconds(CLOCK_MONOTONIC), cpu0 = Seconds(CLOCK_THREAD_CPUTIME_ID);
    for (long i = 0; i < count; ++i) ok += read(fd, &c, 1) == 1;
    double wall1 = Seconds(CLOCK_MONOTONIC), cpu1 = Seconds(CLOCK_THREAD_CPUTIME_ID);
    if (ok != count) {
      fprintf(stderr, "read loop: %ld of %ld reads returned a byte\n", ok, count);
      return 2;
    }
    best_wall = std::min(best_wall, (wall1 - wall0) * 1e9 / static_cast<double>(count));
    best_cpu = std::min(best_cpu, (cpu1 - cpu0) * 1e9 / static_cast<double>(count));
  }

  // 2. Paired: chunks of reads through read() (the shim's hook, when it is
  // preloaded) and through libc's read directly, alternating every few
  // milliseconds so that both see the same machine. Without the shim both
  // paths are libc's, which checks the method (their difference is ~0).
  std::vector<double> hooked, plain, ratio;
  for (long pair = 0; pair < std::max(1L, count / 2 / kChunk); ++pair) {
    double ns[2];
    for (int k = 0; k < 2; ++k) {
      bool through_hook = (k == 0) == (pair % 2 == 0);
      if (!refill(kChunk)) return 2;
      char c;
      long ok = 0;
      double cpu0 = Seconds(CLOCK_THREAD_CPUTIME_ID);
      if (through_hook) {
        for (long i = 0; i < kChunk; ++i) ok += read(fd, &c, 1) == 1;
      } else {
        for (long i = 0; i < kChunk; ++i) ok += direct(fd, &c, 1) == 1;
      }
      double cpu1 = Seconds(CLOCK_THREAD_CPUTIME_ID);
      if (ok != kChunk) return 2;
      ns[through_hook ? 0 : 1] = (cpu1 - cpu0) * 1e9 / static_cast<double>(kChunk);
    }
    hooked.push_back(ns[0]);
    plain.push_back(ns[1]);
    ratio.push_back(ns[0] / ns[1]);
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  close(fd);
  if (pipe_in >= 0) close(pipe_in);
  printf("%s wall_ns %.2f cpu_ns %.2f hooked_ns %.2f direct_ns %.2f paired_percent %.3f\n", kind.c_str(), best_wall,
         best_cpu, median(hooked), median(plain), 100 * (median(ratio) - 1));
  return 0;
}

}  // namespace reuseport::bench
