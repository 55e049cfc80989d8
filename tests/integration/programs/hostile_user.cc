// hostile_user: what a second local user would try against reuseportd, one
// attack per run, speaking the protocol from include/reuseport/protocol.h
// with nothing but its own sockets. The test runs it under another uid than
// the victim's and judges the outcome from the victim's side and the broker's
// status; this program only reports what it saw, one "key value" per line.
//
//   hostile_user rejoin-hijack SOCKET PORT SECONDS READY_FILE
//       binds [::]:PORT (UDP, dual-stack, SO_REUSEADDR) beside a victim's
//       0.0.0.0:PORT group, presents it with a channel of its own as the
//       victim's group socket (REJOIN, as [::] and as 0.0.0.0), writes
//       READY_FILE, then counts the datagrams its socket receives.
//   hostile_user forged-proofs SOCKET
//       ATTACH with a channel end of its own; REJOIN with two ends of two
//       different channels.
//   hostile_user status-flood SOCKET LINKS SECONDS
//       opens LINKS links, asks each for status documents over and over and
//       never reads a reply.
//   hostile_user queue-flood SOCKET GROUPS MEMBERS CONNECTIONS SECONDS READY_FILE
//       makes GROUPS TCP groups of MEMBERS members each that never accept,
//       connects CONNECTIONS clients to them, writes READY_FILE, holds on.
//   hostile_user udp-hoard SOCKET MEMBERS
//       makes UDP members on one port until the broker refuses one.
//   hostile_user idle-connections HOST PORT CONNECTIONS SECONDS READY_FILE
//       holds CONNECTIONS TCP connections that never send a byte.
//   hostile_user ring-truncate SOCKET DATAGRAMS
//       makes a UDP member, shrinks the datagram ring the broker handed it
//       to nothing (ftruncate), sends DATAGRAMS datagrams to its own port
//       and then asks the broker for another member.
//   hostile_user pid-reuse SOCKET UID GID GROUP PORT
//       (as root, alone in a PID namespace with the broker) a process of
//       UID:GID opens a link, is seen by the broker, hands the link to a child
//       and exits; a process of UID:GID with supplementary group GROUP is made
//       to take the exited one's pid; then the child asks through the link to
//       join PORT, which a policy rule grants to GROUP only.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "reuseport/protocol.h"
#include "reuseport/errno_name.h"
#include "scm_rights.h"

namespace {

using reuseport::testing::SendWithFds;

int Connect(const char* path) {
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
  if (connect(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Sends one request and waits (bounded) for its reply; returns the reply's
// status, or -1 when none came. Fds that come back are closed or kept.
int Call(int link, uint16_t opcode, const void* payload, uint32_t size, const std::vector<int>& fds,
         std::vector<int>* returned = nullptr) {
  static uint64_t id = 0;
  std::string bytes(sizeof(rp_header) + size, '\0');
  rp_header h = rp_request_header(opcode, size, ++id);
  memcpy(bytes.data(), &h, sizeof(h));
  if (size > 0) memcpy(bytes.data() + sizeof(h), payload, size);
  if (SendWithFds(link, bytes.data(), bytes.size(), fds) < 0) return -1;
  struct pollfd p = {link, POLLIN, 0};
  if (poll(&p, 1, 5000) != 1) return -1;
  char buffer[4096];
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * RP_MAX_FDS)];
  struct iovec iov = {buffer, sizeof(buffer)};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n = recvmsg(link, &msg, MSG_CMSG_CLOEXEC);
  if (n < static_cast<ssize_t>(sizeof(rp_header))) return -1;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (returned != nullptr) {
        returned->push_back(fd);
      } else {
        close(fd);
      }
    }
  }
  rp_header reply;
  memcpy(&reply, buffer, sizeof(reply));
  return reply.status;
}

const char* ErrnoName(int status) {
  if (status < 0) return "no-reply";
  if (status == 0) return "OK";
  return rp_errno_name(status);
}

rp_address AnyAddress(int family, uint16_t port) {
  rp_address a{};
  a.family = static_cast<uint16_t>(family);
  a.port = port;
  return a;
}

void WriteReady(const char* path) {
  std::string temporary = std::string(path) + ".tmp";
  FILE* f = fopen(temporary.c_str(), "w");
  if (f != nullptr) fclose(f);
  rename(temporary.c_str(), path);
}

void SleepSeconds(double seconds) {
  struct timespec t = {static_cast<time_t>(seconds), static_cast<long>((seconds - static_cast<time_t>(seconds)) * 1e9)};
  nanosleep(&t, nullptr);
}

int RejoinHijack(const char* path, uint16_t port, double seconds, const char* ready) {
  int s = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int zero = 0, one = 1;
  setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  struct sockaddr_in6 a {};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(port);
  if (bind(s, reinterpret_cast<struct sockaddr*>(&a), sizeof(a)) != 0) {
    printf("bind %s\n", rp_errno_name(errno));
    return 1;
  }
  printf("bind OK\n");
  for (int family : {AF_INET6, AF_INET}) {
    int pair[2];
    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair);
    int link = Connect(path);
    rp_rejoin_request req{};
    req.bound = AnyAddress(family, port);
    req.protocol = RP_PROTO_UDP;
    req.listening = 1;
    int status = Call(link, RP_OP_REJOIN, &req, sizeof(req), {pair[1], pair[0], s});
    printf("rejoin_as_%s %s\n", family == AF_INET ? "ipv4" : "ipv6", ErrnoName(status));
    // The link stays open, as a member's would.
  }
  fflush(stdout);
  WriteReady(ready);
  int received = 0;
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double left = seconds - (now.tv_sec - start.tv_sec) - (now.tv_nsec - start.tv_nsec) / 1e9;
    if (left <= 0) break;
    struct pollfd p = {s, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left * 1000) + 1) != 1) continue;
    char buf[2048];
    while (recv(s, buf, sizeof(buf), MSG_DONTWAIT) >= 0) ++received;
  }
  printf("received %d\n", received);
  return 0;
}

int ForgedProofs(const char* path) {
  int victim_like[2], other[2];
  socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, victim_like);
  socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, other);
  int link = Connect(path);
  printf("attach %s\n", ErrnoName(Call(link, RP_OP_ATTACH, nullptr, 0, {victim_like[1]})));
  int tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(tcp, reinterpret_cast<struct sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(tcp, reinterpret_cast<struct sockaddr*>(&a), &len);
  rp_rejoin_request req{};
  req.bound = AnyAddress(AF_INET, ntohs(a.sin_port));
  memcpy(req.bound.addr, &a.sin_addr, 4);
  req.protocol = RP_PROTO_TCP;
  int rejoin_link = Connect(path);
  printf("rejoin_mismatched %s\n",
         ErrnoName(Call(rejoin_link, RP_OP_REJOIN, &req, sizeof(req), {victim_like[1], other[0], tcp})));
  return 0;
}

int StatusFlood(const char* path, int links, double seconds) {
  std::vector<int> fds;
  for (int i = 0; i < links; ++i) {
    int fd = Connect(path);
    if (fd < 0) break;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    fds.push_back(fd);
  }
  printf("links_opened %zu\n", fds.size());
  rp_status_request req{RP_STATUS_JSON, 0};
  std::string bytes(sizeof(rp_header) + sizeof(req), '\0');
  rp_header h = rp_request_header(RP_OP_STATUS, sizeof(req), 1);
  memcpy(bytes.data(), &h, sizeof(h));
  memcpy(bytes.data() + sizeof(h), &req, sizeof(req));
  long sent = 0;
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if ((now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9 >= seconds) break;
    bool any = false;
    for (int fd : fds) {
      for (int k = 0; k < 64; ++k) {
        if (send(fd, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) break;
        ++sent;
        any = true;
      }
    }
    if (!any) SleepSeconds(0.01);
  }
  int closed = 0;
  for (int fd : fds) {
    char byte;
    // A link the broker closed reads EOF once its queued replies are read;
    // a write to it fails at once.
    if (send(fd, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno != EAGAIN) ++closed;
    (void)byte;
  }
  printf("requests_sent %ld\nlinks_closed_by_broker %d\n", sent, closed);
  return 0;
}

// One TCP member on `port` (0: a new group on a port of its own): returns the
// port; its link and channel stay open and unread for ever.
uint16_t TcpMember(const char* path, uint16_t port, std::vector<int>* keep) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (port == 0 && bind(s, reinterpret_cast<struct sockaddr*>(&a), sizeof(a)) != 0) return 0;
  socklen_t len = sizeof(a);
  if (port == 0) getsockname(s, reinterpret_cast<struct sockaddr*>(&a), &len);
  int link = Connect(path);
  rp_bind_request req{};
  req.address = AnyAddress(AF_INET, ntohs(a.sin_port));
  memcpy(req.address.addr, &a.sin_addr, 4);
  req.protocol = RP_PROTO_TCP;
  if (Call(link, RP_OP_BIND, &req, sizeof(req), {s}, keep) != 0) return 0;
  rp_listen_request listen_req{1024, 0};
  if (Call(link, RP_OP_LISTEN, &listen_req, sizeof(listen_req), {}) != 0) return 0;
  keep->push_back(link);
  close(s);
  return ntohs(a.sin_port);
}

int QueueFlood(const char* path, int groups, int members, int connections, double seconds, const char* ready) {
  std::vector<int> keep;
  std::vector<uint16_t> ports;
  int made = 0;
  for (int g = 0; g < groups; ++g) {
    uint16_t port = TcpMember(path, 0, &keep);
    if (port == 0) break;
    ++made;
    ports.push_back(port);
    for (int m = 1; m < members; ++m) made += TcpMember(path, port, &keep) != 0;
  }
  printf("groups %zu\nmembers %d\n", ports.size(), made);
  int connected = 0;
  for (int i = 0; i < connections && !ports.empty(); ++i) {
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a {};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(ports[static_cast<size_t>(i) % ports.size()]);
    if (connect(c, reinterpret_cast<struct sockaddr*>(&a), sizeof(a)) == 0) ++connected;
    close(c);  // the broker still accepts and hands it on
  }
  printf("connected %d\n", connected);
  fflush(stdout);
  WriteReady(ready);
  SleepSeconds(seconds);
  return 0;
}

int UdpHoard(const char* path, int members) {
  std::vector<int> keep;
  uint16_t port = 0;
  int made = 0;
  int last = 0;
  for (int i = 0; i < members; ++i) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a {};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (port == 0) {
      bind(s, reinterpret_cast<struct sockaddr*>(&a), sizeof(a));
      socklen_t len = sizeof(a);
      getsockname(s, reinterpret_cast<struct sockaddr*>(&a), &len);
      port = ntohs(a.sin_port);
    }
    int link = Connect(path);
    rp_bind_request req{};
    req.address = AnyAddress(AF_INET, port);
    memcpy(req.address.addr, &a.sin_addr, 4);
    req.protocol = RP_PROTO_UDP;
    last = Call(link, RP_OP_BIND, &req, sizeof(req), {s}, &keep);
    close(s);
    if (last != 0) break;
    keep.push_back(link);
    ++made;
  }
  printf("members %d\nrefused %s\n", made, ErrnoName(last));
  return 0;
}

int RingTruncate(const char* path, int datagrams) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(s, reinterpret_cast<struct sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(s, reinterpret_cast<struct sockaddr*>(&a), &len);
  uint16_t port = ntohs(a.sin_port);
  int link = Connect(path);
  rp_bind_request req{};
  req.address = AnyAddress(AF_INET, port);
  memcpy(req.address.addr, &a.sin_addr, 4);
  req.protocol = RP_PROTO_UDP;
  std::vector<int> fds;
  printf("bind %s\n", ErrnoName(Call(link, RP_OP_BIND, &req, sizeof(req), {s}, &fds)));
  close(s);
  int ring = -1;
  for (int fd : fds) {
    struct stat st {};
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) ring = fd;
  }
  printf("ring %s\n", ring >= 0 ? "yes" : "no");
  if (ring >= 0) printf("truncated %s\n", ftruncate(ring, 0) == 0 ? "yes" : strerrorname_np(errno));
  int sender = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  for (int i = 0; i < datagrams; ++i) {
    sendto(sender, "x", 1, 0, reinterpret_cast<struct sockaddr*>(&a), sizeof(a));
    if (i % 10 == 9) SleepSeconds(0.01);
  }
  SleepSeconds(0.2);
  int s2 = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int link2 = Connect(path);
  printf("second_bind %s\n", link2 < 0 ? "no-link" : ErrnoName(Call(link2, RP_OP_BIND, &req, sizeof(req), {s2})));
  return 0;
}

int IdleConnections(const char* host, uint16_t port, int count, double seconds, const char* ready) {
  std::vector<int> keep;
  for (int i = 0; i < count; ++i) {
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a {};
    a.sin_family = AF_INET;
    inet_pton(AF_INET, host, &a.sin_addr);
    a.sin_port = htons(port);
    if (connect(c, reinterpret_cast<struct sockaddr*>(&a), sizeof(a)) == 0) keep.push_back(c);
  }
  printf("connected %zu\n", keep.size());
  fflush(stdout);
  WriteReady(ready);
  SleepSeconds(seconds);
  return 0;
}

// Drops to uid:gid with exactly `groups` as supplementary groups.
bool BecomeUser(uid_t uid, gid_t gid, const std::vector<gid_t>& groups) {
  return setgroups(groups.size(), groups.data()) == 0 && setgid(gid) == 0 && setuid(uid) == 0;
}

int PidReuse(const char* path, uid_t uid, gid_t gid, gid_t group, uint16_t port) {
  int go[2], done[2], settled[2];
  if (pipe2(go, O_CLOEXEC) != 0 || pipe2(done, O_CLOEXEC) != 0 || pipe2(settled, O_CLOEXEC) != 0) return 1;
  pid_t first = fork();
  if (first == 0) {
    if (!BecomeUser(uid, gid, {})) _exit(10);
    int link = Connect(path);
    rp_status_request status{RP_STATUS_TEXT, 0};
    // A reply proves the broker accepted the link (and read who we are).
    if (link < 0 || Call(link, RP_OP_STATUS, &status, sizeof(status), {}) != 0) _exit(11);
    for (;;) {  // drain the rest of a chunked reply
      struct pollfd p = {link, POLLIN, 0};
      if (poll(&p, 1, 200) != 1) break;
      char buf[65536];
      if (recv(link, buf, sizeof(buf), 0) <= 0) break;
    }
    if (fork() == 0) {  // the holder: waits, then asks through the inherited link
      // A thread made and joined now: a runtime that starts a helper thread
      // lazily (TSan does, in a forked child) takes its pid before the
      // first process's pid is handed out again, not after.
      std::thread([] {}).join();
      close(settled[0]);
      close(settled[1]);
      char byte;
      if (read(go[0], &byte, 1) != 1) _exit(12);
      int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      rp_bind_request req{};
      req.address = AnyAddress(AF_INET, port);
      uint32_t loopback = htonl(INADDR_LOOPBACK);
      memcpy(req.address.addr, &loopback, 4);
      req.protocol = RP_PROTO_TCP;
      printf("bind %s\n", ErrnoName(Call(link, RP_OP_BIND, &req, sizeof(req), {s})));
      _exit(0);
    }
    _exit(0);
  }
  close(done[1]);  // only the holder keeps it: EOF means it is gone
  close(settled[1]);
  int status = 0;
  waitpid(first, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    printf("first_process failed %d\n", status);
    return 1;
  }
  char settled_byte;
  (void)read(settled[0], &settled_byte, 1);  // EOF: the holder has made its threads
  // The next pid this namespace hands out is the first process's.
  FILE* last = fopen("/proc/sys/kernel/ns_last_pid", "w");
  if (last == nullptr) {
    printf("ns_last_pid %s\n", rp_errno_name(errno));
    return 1;
  }
  fprintf(last, "%d", first - 1);
  fclose(last);
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) return 1;
  pid_t impostor = fork();
  if (impostor == 0) {
    if (!BecomeUser(uid, gid, {group})) _exit(13);
    close(ready[0]);
    close(ready[1]);  // tells the parent it has its identity
    pause();
    _exit(0);
  }
  close(ready[1]);
  char byte;
  (void)read(ready[0], &byte, 1);
  printf("pid_reused %s\n", impostor == first ? "yes" : "no");
  if (write(go[1], "g", 1) != 1) return 1;
  close(go[1]);
  struct pollfd p = {done[0], POLLIN, 0};
  poll(&p, 1, 10000);  // the holder answers and exits
  kill(impostor, SIGKILL);
  return 0;
}

int Usage() {
  fprintf(stderr, "usage: see the comment at the top of hostile_user.cc\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  if (argc < 3) return Usage();
  std::string attack = argv[1];
  if (attack == "rejoin-hijack" && argc == 6) return RejoinHijack(argv[2], static_cast<uint16_t>(atoi(argv[3])), atof(argv[4]), argv[5]);
  if (attack == "forged-proofs" && argc == 3) return ForgedProofs(argv[2]);
  if (attack == "status-flood" && argc == 5) return StatusFlood(argv[2], atoi(argv[3]), atof(argv[4]));
  if (attack == "queue-flood" && argc == 8) {
    return QueueFlood(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atof(argv[6]), argv[7]);
  }
  if (attack == "ring-truncate" && argc == 4) return RingTruncate(argv[2], atoi(argv[3]));
  if (attack == "udp-hoard" && argc == 4) return UdpHoard(argv[2], atoi(argv[3]));
  if (attack == "pid-reuse" && argc == 7) {
    return PidReuse(argv[2], static_cast<uid_t>(atoi(argv[3])), static_cast<gid_t>(atoi(argv[4])),
                    static_cast<gid_t>(atoi(argv[5])), static_cast<uint16_t>(atoi(argv[6])));
  }
  if (attack == "idle-connections" && argc == 7) {
    return IdleConnections(argv[2], static_cast<uint16_t>(atoi(argv[3])), atoi(argv[4]), atof(argv[5]), argv[6]);
  }
  return Usage();
}
