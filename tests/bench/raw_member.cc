#include "raw_member.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "reuseport/protocol.h"
#include "scm_rights.h"

namespace reuseport::bench {

RawMember& RawMember::operator=(RawMember&& other) noexcept {
  if (this != &other) {
    Close();
    link_ = other.link_;
    next_request_ = other.next_request_;
    other.link_ = -1;
  }
  return *this;
}

bool RawMember::Connect(const std::string& socket_path) {
  Close();
  link_ = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (link_ < 0) return false;
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, socket_path.c_str(), sizeof(addr.sun_path) - 1);
  // A broker that stops answering must not hang the benchmark.
  struct timeval tv = {5, 0};
  setsockopt(link_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (connect(link_, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) != 0) {
    int saved = errno;
    Close();
    errno = saved;
    return false;
  }
  return true;
}

void RawMember::Close() {
  if (link_ >= 0) close(link_);
  link_ = -1;
}

int RawMember::CreateTcpGroup(uint16_t* port) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (bind(s, reinterpret_cast<struct sockaddr*>(&a), sizeof(a)) != 0 ||
      getsockname(s, reinterpret_cast<struct sockaddr*>(&a), &len) != 0) {
    int saved = errno;
    close(s);
    return saved;
  }
  int status = Bind(s, ntohs(a.sin_port), port);
  close(s);
  return status;
}

int RawMember::JoinTcpGroup(uint16_t port) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  uint16_t bound = 0;
  int status = Bind(s, port, &bound);
  close(s);
  return status;
}

int RawMember::Bind(int socket_fd, uint16_t port, uint16_t* bound_port) {
  if (link_ < 0) return -1;
  uint64_t id = next_request_++;
  struct {
    rp_header h;
    rp_bind_request b;
  } msg{};
  msg.h = rp_request_header(RP_OP_BIND, sizeof(rp_bind_request), id);
  msg.b.address.family = AF_INET;
  msg.b.address.port = port;
  uint32_t lo = htonl(INADDR_LOOPBACK);
  memcpy(msg.b.address.addr, &lo, 4);
  msg.b.protocol = RP_PROTO_TCP;
  if (testing::SendWithFds(link_, &msg, sizeof(msg), {socket_fd}) < 0) return -1;
  rp_member_reply reply{};
  int status = ReadReply(id, &reply, sizeof(reply));
  if (status == 0 && bound_port != nullptr) *bound_port = reply.bound.port;
  return status;
}

int RawMember::Listen(int backlog) {
  if (link_ < 0) return -1;
  uint64_t id = next_request_++;
  struct {
    rp_header h;
    rp_listen_request l;
  } msg{};
  msg.h = rp_request_header(RP_OP_LISTEN, sizeof(rp_listen_request), id);
  msg.l.backlog = backlog;
  if (send(link_, &msg, sizeof(msg), MSG_NOSIGNAL) < 0) return -1;
  return ReadReply(id, nullptr, 0);
}

int RawMember::ReadReply(uint64_t request_id, void* payload, size_t size) {
  char buf[sizeof(rp_header) + 256];
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * RP_MAX_FDS)];
  for (;;) {
    struct iovec iov = {buf, sizeof(buf)};
    struct msghdr r {};
    r.msg_iov = &iov;
    r.msg_iovlen = 1;
    r.msg_control = control;
    r.msg_controllen = sizeof(control);
    ssize_t n = recvmsg(link_, &r, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n < static_cast<ssize_t>(sizeof(rp_header))) return -1;
    // The channel and the group socket: this member never reads its channel
    // (the broker keeps a duplicate of the member's end), so drop them.
    for (struct cmsghdr* rc = CMSG_FIRSTHDR(&r); rc != nullptr; rc = CMSG_NXTHDR(&r, rc)) {
      if (rc->cmsg_level != SOL_SOCKET || rc->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (rc->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int fd;
        memcpy(&fd, CMSG_DATA(rc) + i * sizeof(int), sizeof(int));
        close(fd);
      }
    }
    rp_header h;
    memcpy(&h, buf, sizeof(h));
    if (h.magic != RP_MAGIC || !(h.flags & RP_FLAG_REPLY)) return -1;
    if (h.request_id != request_id) continue;
    if (h.status == 0 && payload != nullptr && static_cast<size_t>(n) >= sizeof(rp_header) + size) {
      memcpy(payload, buf + sizeof(rp_header), size);
    }
    return h.status;
  }
}

}  // namespace reuseport::bench
