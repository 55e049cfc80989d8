#include "bench_servers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

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

int Open(const char* host, uint16_t port, int type, bool reuseport) {
  struct sockaddr_storage ss {};
  socklen_t len;
  int family;
  if (strchr(host, ':') != nullptr) {
    auto* a = reinterpret_cast<struct sockaddr_in6*>(&ss);
    a->sin6_family = family = AF_INET6;
    a->sin6_port = htons(port);
    inet_pton(AF_INET6, host, &a->sin6_addr);
    len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<struct sockaddr_in*>(&ss);
    a->sin_family = family = AF_INET;
    a->sin_port = htons(port);
    inet_pton(AF_INET, host, &a->sin_addr);
    len = sizeof(*a);
  }
  int fd = socket(family, type | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
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

uint64_t AcceptLoop(int listener) {
  uint64_t served = 0;
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
    if (got == kMessageBytes && write(c, buf, sizeof(buf)) == kMessageBytes) ++served;
    close(c);
  }
  return served;
}

uint64_t ReceiveLoop(int fd) {
  constexpr int kBatch = 32;
  static char bufs[kBatch][2048];
  struct mmsghdr msgs[kBatch];
  struct iovec iov[kBatch];
  uint64_t received = 0;
  while (!g_stop) {
    for (int i = 0; i < kBatch; ++i) {
      iov[i] = {bufs[i], sizeof(bufs[i])};
      memset(&msgs[i], 0, sizeof(msgs[i]));
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(fd, msgs, kBatch, MSG_WAITFORONE, nullptr);
    if (n > 0) received += static_cast<uint64_t>(n);
  }
  return received;
}

int ForkWorkers(int workers, uint64_t (*loop)(int), int fd) {
  std::vector<pid_t> children;
  int pipes[2];
  if (pipe(pipes) != 0) return 1;
  for (int i = 0; i < workers; ++i) {
    pid_t p = fork();
    if (p == 0) {
      close(pipes[0]);
      InstallStop();
      uint64_t n = loop(fd);
      dprintf(pipes[1], "served %llu\n", static_cast<unsigned long long>(n));
      _exit(0);
    }
    children.push_back(p);
  }
  close(pipes[1]);
  ReportReady(fd);
  InstallStop();
  while (!g_stop) pause();
  for (pid_t p : children) kill(p, SIGTERM);
  char buf[4096];
  ssize_t n;
  while ((n = read(pipes[0], buf, sizeof(buf))) > 0) fwrite(buf, 1, static_cast<size_t>(n), stdout);
  for (pid_t p : children) waitpid(p, nullptr, 0);
  return 0;
}

}  // namespace

int ServeTcpReuseport(const char* host, uint16_t port) {
  int fd = Open(host, port, SOCK_STREAM, true);
  if (fd < 0) return 2;
  ReportReady(fd);
  InstallStop();
  printf("served %llu\n", static_cast<unsigned long long>(AcceptLoop(fd)));
  return 0;
}

int ServeTcpShared(const char* host, uint16_t port, int workers) {
  int fd = Open(host, port, SOCK_STREAM, false);
  if (fd < 0) return 2;
  return ForkWorkers(workers, AcceptLoop, fd);
}

int ServeUdpReuseport(const char* host, uint16_t port) {
  int fd = Open(host, port, SOCK_DGRAM, true);
  if (fd < 0) return 2;
  ReportReady(fd);
  InstallStop();
  printf("served %llu\n", static_cast<unsigned long long>(ReceiveLoop(fd)));
  return 0;
}

int ServeUdpShared(const char* host, uint16_t port, int workers) {
  int fd = Open(host, port, SOCK_DGRAM, false);
  if (fd < 0) return 2;
  return ForkWorkers(workers, ReceiveLoop, fd);
}

}  // namespace reuseport::bench
