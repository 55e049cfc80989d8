// Receiving and sending on a UDP member, and the reads and writes that make no
// sense on a TCP listener.
//
// The broker forwards each datagram as one channel record: rp_header,
// rp_datagram (source, destination, interface) and the datagram bytes. We
// receive the two headers into our own buffer and the bytes straight into the
// program's buffers, so truncation, MSG_PEEK, MSG_TRUNC, MSG_DONTWAIT,
// SO_RCVTIMEO and zero-length datagrams behave as the kernel's UDP does.
// Replies leave directly from the group's real socket, never through the broker.
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>

#include "link_watcher.h"
#include "member_attach.h"
#include "member_ring.h"
#include "member_table.h"
#include "raw_log.h"
#include "real_calls.h"
#include "reuseport/address_codec.h"
#include "reuseport/protocol.h"
#include "shim.h"

namespace reuseport::shim {

namespace {

struct DatagramPrefix {
  struct rp_header header;
  struct rp_datagram datagram;
};
static_assert(sizeof(DatagramPrefix) == 96, "channel record prefix");

constexpr int kStackIovecs = 64;

bool IsListener(const Member* m) { return m != nullptr && m->state == MemberState::kListening; }

// Writes the pktinfo control message a program asked for, as the kernel would.
void WritePacketInfo(const Member* m, const struct rp_datagram& d, struct msghdr* msg) {
  socklen_t room = msg->msg_control != nullptr ? msg->msg_controllen : 0;
  msg->msg_controllen = 0;
  if (!m->want_pktinfo || !(d.flags & RP_DATAGRAM_HAS_DESTINATION)) return;
  if (m->family == AF_INET) {
    struct in_pktinfo info {};
    info.ipi_ifindex = static_cast<int>(d.ifindex);
    struct sockaddr_storage dst;
    if (rp_address_to_sockaddr(&d.destination, AF_INET, &dst) == 0) return;
    info.ipi_addr = reinterpret_cast<struct sockaddr_in*>(&dst)->sin_addr;
    info.ipi_spec_dst = info.ipi_addr;
    if (room < CMSG_SPACE(sizeof(info))) {
      msg->msg_flags |= MSG_CTRUNC;
      return;
    }
    struct cmsghdr* c = reinterpret_cast<struct cmsghdr*>(msg->msg_control);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(info));
    memcpy(CMSG_DATA(c), &info, sizeof(info));
    msg->msg_controllen = CMSG_SPACE(sizeof(info));
  } else {
    struct in6_pktinfo info {};
    info.ipi6_ifindex = d.ifindex;
    struct sockaddr_storage dst;
    if (rp_address_to_sockaddr(&d.destination, AF_INET6, &dst) == 0) return;
    info.ipi6_addr = reinterpret_cast<struct sockaddr_in6*>(&dst)->sin6_addr;
    if (room < CMSG_SPACE(sizeof(info))) {
      msg->msg_flags |= MSG_CTRUNC;
      return;
    }
    struct cmsghdr* c = reinterpret_cast<struct cmsghdr*>(msg->msg_control);
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(info));
    memcpy(CMSG_DATA(c), &info, sizeof(info));
    msg->msg_controllen = CMSG_SPACE(sizeof(info));
  }
}

// Fills the program's msghdr from a received record's prefix: source address,
// pktinfo, truncation. Returns the datagram's length as recvmsg would.
ssize_t FinishDatagram(const Member* m, const DatagramPrefix& prefix, ssize_t record_length, int inner_flags,
                       struct msghdr* msg) {
  msg->msg_flags = inner_flags & MSG_TRUNC;
  if (msg->msg_name != nullptr) {
    struct sockaddr_storage source;
    socklen_t source_len = rp_address_to_sockaddr(&prefix.datagram.source, m->family, &source);
    if (source_len == 0) source_len = rp_address_to_sockaddr(&prefix.datagram.source, prefix.datagram.source.family, &source);
    rp_copy_sockaddr_out(&source, source_len, static_cast<struct sockaddr*>(msg->msg_name), &msg->msg_namelen);
  }
  WritePacketInfo(m, prefix.datagram, msg);
  return record_length - static_cast<ssize_t>(sizeof(prefix));
}

bool ValidDatagram(const DatagramPrefix& prefix, ssize_t n, int inner_flags) {
  bool truncated_prefix = (inner_flags & MSG_TRUNC) && static_cast<size_t>(n) < sizeof(prefix);
  return n >= static_cast<ssize_t>(sizeof(prefix)) && !truncated_prefix && prefix.header.magic == RP_MAGIC &&
         prefix.header.opcode == RP_OP_DATAGRAM && prefix.header.payload_size == sizeof(rp_datagram);
}

// Receives one datagram record from m's channel into the program's msghdr.
ssize_t ReceiveChannelDatagram(int fd, Member* m, struct msghdr* msg, int flags) {
  size_t count = msg->msg_iovlen;
  if (count > 1023) {
    errno = EMSGSIZE;
    return -1;
  }
  struct iovec stack_iov[kStackIovecs];
  struct iovec* iov = stack_iov;
  size_t mapped = 0;
  if (count + 1 > static_cast<size_t>(kStackIovecs)) {
    mapped = sizeof(struct iovec) * (count + 1);
    void* p = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      errno = ENOMEM;
      return -1;
    }
    iov = static_cast<struct iovec*>(p);
  }
  DatagramPrefix prefix;
  iov[0] = {&prefix, sizeof(prefix)};
  for (size_t i = 0; i < count; ++i) iov[i + 1] = msg->msg_iov[i];

  ssize_t result = -1;
  for (;;) {
    struct msghdr inner {};
    inner.msg_iov = iov;
    inner.msg_iovlen = count + 1;
    ssize_t n = Real().recvmsg(fd, &inner, flags & (MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC));
    if (n < 0) break;
    if (!ValidDatagram(prefix, n, inner.msg_flags)) {
      static int warned;
      if (FirstTime(&warned)) RawLog(kLogError).Str("udp fd ").Int(fd).Str(": unexpected channel record").Emit();
      if (n == 0) {
        errno = ECONNRESET;
        break;
      }
      if (flags & MSG_PEEK) Real().recvmsg(fd, &inner, MSG_DONTWAIT);  // drop it
      continue;
    }
    result = FinishDatagram(m, prefix, n, inner.msg_flags, msg);
    break;
  }
  int err = errno;
  if (mapped != 0) munmap(iov, mapped);
  errno = err;
  return result;
}

// Copies up to the iovecs' room; returns what was copied.
size_t CopyToIovecs(const uint8_t* bytes, size_t length, const struct iovec* iov, size_t count) {
  size_t copied = 0;
  for (size_t i = 0; i < count && copied < length; ++i) {
    size_t n = iov[i].iov_len < length - copied ? iov[i].iov_len : length - copied;
    if (n > 0) memcpy(iov[i].iov_base, bytes + copied, n);
    copied += n;
  }
  return copied;
}

// Reads out the doorbell this take made redundant (datagram_ring.h). It was
// sent before the record was published; anything else found first is not
// ours to drop, so only a doorbell is read.
void ReadDoorbell(int fd) {
  rp_header h;
  ssize_t n = Real().recv(fd, &h, sizeof(h), MSG_PEEK | MSG_DONTWAIT);
  if (n == static_cast<ssize_t>(sizeof(h)) && h.magic == RP_MAGIC && h.opcode == RP_OP_DOORBELL) {
    Real().recv(fd, &h, sizeof(h), MSG_DONTWAIT);
  }
}

int64_t MonotonicNs() {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

// A doorbell waits in the channel and the ring has nothing to take
// (datagram_ring.h, "heals"). Stale (pending <= 0): drop it. Otherwise the
// broker is between publishing and counting, or a consumer died between its
// take and its count: wait briefly, and after RP_RING_STUCK_NS reset the
// count. False (errno EAGAIN) when the caller must not wait.
bool WaitBehindDoorbell(int fd, Member* m, rp_ring* ring, int flags, int idle) {
  int64_t pending = rp_ring_pending(ring);
  if (pending <= 0) {
    rp_header h;
    Real().recv(fd, &h, sizeof(h), MSG_DONTWAIT);  // the oldest doorbell: the stale one
    __atomic_store_n(&m->ring_stuck_since, 0, __ATOMIC_RELAXED);
    return true;
  }
  int64_t now = MonotonicNs();
  int64_t since = __atomic_load_n(&m->ring_stuck_since, __ATOMIC_RELAXED);
  if (since == 0) {
    __atomic_store_n(&m->ring_stuck_since, now, __ATOMIC_RELAXED);
  } else if (now - since > RP_RING_STUCK_NS) {
    rp_ring_reset_pending(ring, pending);
    __atomic_store_n(&m->ring_stuck_since, 0, __ATOMIC_RELAXED);
    return true;
  }
  bool nonblocking = (flags & MSG_DONTWAIT) || (Real().fcntl(fd, F_GETFL) & O_NONBLOCK);
  if (nonblocking) {
    errno = EAGAIN;
    return false;
  }
  if (idle > 64) {
    struct timespec pause = {0, idle > 1000 ? 1000000L : 20000L};
    nanosleep(&pause, nullptr);
  }
  return true;
}

// Receives one datagram for a member with a ring: taken from shared memory,
// no system call while datagrams wait. When none does, the channel says when
// one comes, with the program's blocking, O_NONBLOCK and SO_RCVTIMEO.
ssize_t ReceiveRingDatagram(int fd, Member* m, struct msghdr* msg, int flags) {
  if (msg->msg_iovlen > 1024) {
    errno = EMSGSIZE;
    return -1;
  }
  // A copy: DropRing in another thread clears m->ring but leaves the pages
  // mapped (as zeros, an empty ring), so this stays safe to read.
  rp_ring ring = m->ring;
  if (ring.header == nullptr) return ReceiveChannelDatagram(fd, m, msg, flags);
  for (int idle = 0;; ++idle) {
    rp_ring_record r;
    const uint8_t* bytes = nullptr;
    uint64_t at = 0;
    int found = rp_ring_next(&ring, &r, &bytes, &at);
    if (found == RP_RING_READY) {
      size_t copied = CopyToIovecs(bytes, r.data_length, msg->msg_iov, msg->msg_iovlen);
      if (flags & MSG_PEEK) {
        if (!rp_ring_still_at(&ring, at)) continue;  // taken meanwhile: the copy may be torn
      } else {
        int doorbell = 0;
        if (!rp_ring_commit(&ring, at, &r, &doorbell)) continue;  // another reader took it
        if (doorbell) ReadDoorbell(fd);
      }
      DatagramPrefix prefix;
      prefix.header = rp_request_header(RP_OP_DATAGRAM, sizeof(rp_datagram), 0);
      prefix.datagram = r.datagram;
      bool truncated = copied < r.data_length;
      ssize_t reported = static_cast<ssize_t>((flags & MSG_TRUNC) ? r.data_length : copied);
      return FinishDatagram(m, prefix, static_cast<ssize_t>(sizeof(prefix)) + reported, truncated ? MSG_TRUNC : 0, msg);
    }
    if (found == RP_RING_CORRUPT) {
      static int warned;
      if (FirstTime(&warned)) RawLog(kLogError).Str("udp fd ").Int(fd).Str(": its datagram ring is corrupt").Emit();
    }
    // Nothing to take: wait for the doorbell, or for a datagram record (a
    // broker that does not write into the ring).
    rp_header h;
    ssize_t n = Real().recv(fd, &h, sizeof(h), MSG_PEEK | (flags & MSG_DONTWAIT));
    if (n < 0) return -1;
    if (n == 0) {
      errno = ECONNRESET;
      return -1;
    }
    if (n != static_cast<ssize_t>(sizeof(h)) || h.magic != RP_MAGIC || h.opcode != RP_OP_DOORBELL) {
      return ReceiveChannelDatagram(fd, m, msg, flags);
    }
    if (!WaitBehindDoorbell(fd, m, &ring, flags, idle)) return -1;
  }
}

// Receives one datagram for member m into the program's msghdr.
ssize_t ReceiveDatagram(int fd, Member* m, struct msghdr* msg, int flags) {
  if (flags & MSG_OOB) {
    errno = EOPNOTSUPP;
    return -1;
  }
  if (flags & MSG_ERRQUEUE) {
    errno = EAGAIN;  // errors of the shared socket are not per member
    return -1;
  }
  EnsureLinkWatcher();  // a forked worker starts its own on first use
  if (HasRing(m)) return ReceiveRingDatagram(fd, m, msg, flags);
  return ReceiveChannelDatagram(fd, m, msg, flags);
}

// The group socket's family can differ from the member's (an IPv4 member
// served by a dual-stack socket): express the destination in its family.
socklen_t DestinationFor(const Member* m, const struct sockaddr* to, socklen_t to_len, struct sockaddr_storage* out) {
  struct rp_address a;
  if (rp_address_from_sockaddr(to, to_len, &a) != 0) return 0;
  return rp_address_to_sockaddr(&a, m->group_family == 0 ? m->family : m->group_family, out);
}

ssize_t SendDatagram(const Member* m, const struct msghdr* msg, int flags, int fd_flags_nonblock) {
  struct msghdr out = *msg;
  struct sockaddr_storage destination;
  if (msg->msg_name == nullptr || msg->msg_namelen == 0) {
    if (!m->connected) {
      errno = EDESTADDRREQ;
      return -1;
    }
    out.msg_name = const_cast<struct sockaddr_storage*>(&m->peer);
    out.msg_namelen = m->peer_len;
  } else {
    socklen_t len = DestinationFor(m, static_cast<const struct sockaddr*>(msg->msg_name), msg->msg_namelen, &destination);
    if (len != 0) {
      out.msg_name = &destination;
      out.msg_namelen = len;
    }
  }
  // The program's fd (the channel) carries its O_NONBLOCK; the shared socket
  // is left blocking, so non-blocking sends say so per call.
  return Real().sendmsg(m->group_fd, &out, flags | (fd_flags_nonblock ? MSG_DONTWAIT : 0));
}

// recvmmsg on the channel for up to kBatch of the program's messages at once,
// each record's prefix into our buffer and its data into the program's iovecs.
// Returns what the kernel's recvmmsg would, or -2 when the batch cannot be laid
// out here (too many iovecs) and the caller should go one at a time.
constexpr unsigned kBatch = 32;
constexpr size_t kBatchIovecs = 256;

int ReceiveDatagramBatch(int fd, Member* m, struct mmsghdr* msgs, unsigned count, int flags, struct timespec* timeout) {
  if (count > kBatch) count = kBatch;
  size_t needed = 0;
  for (unsigned i = 0; i < count; ++i) needed += msgs[i].msg_hdr.msg_iovlen + 1;
  if (needed > kBatchIovecs) return -2;
  DatagramPrefix prefixes[kBatch];
  struct iovec iovs[kBatchIovecs];
  struct mmsghdr inner[kBatch];
  size_t at = 0;
  for (unsigned i = 0; i < count; ++i) {
    memset(&inner[i], 0, sizeof(inner[i]));
    inner[i].msg_hdr.msg_iov = &iovs[at];
    iovs[at++] = {&prefixes[i], sizeof(prefixes[i])};
    for (size_t k = 0; k < msgs[i].msg_hdr.msg_iovlen; ++k) iovs[at++] = msgs[i].msg_hdr.msg_iov[k];
    inner[i].msg_hdr.msg_iovlen = msgs[i].msg_hdr.msg_iovlen + 1;
  }
  int n = Real().recvmmsg(fd, inner, count, flags & (MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC | MSG_WAITFORONE), timeout);
  if (n <= 0) return n;
  for (int i = 0; i < n; ++i) {
    ssize_t length = static_cast<ssize_t>(inner[i].msg_len);
    if (!ValidDatagram(prefixes[i], length, inner[i].msg_hdr.msg_flags)) {
      static int warned;
      if (FirstTime(&warned)) RawLog(kLogError).Str("udp fd ").Int(fd).Str(": unexpected channel record").Emit();
      msgs[i].msg_len = 0;
      msgs[i].msg_hdr.msg_flags = 0;
      continue;
    }
    msgs[i].msg_len = static_cast<unsigned>(FinishDatagram(m, prefixes[i], length, inner[i].msg_hdr.msg_flags, &msgs[i].msg_hdr));
  }
  return n;
}

// The member behind fd once its traffic comes through the broker; nullptr sends the call to the kernel as is
// (not a member, or bound but not yet switched to its channel).
inline __attribute__((always_inline)) Member* EmulatedMember(int fd) {
  Member* m = LookupMemberOrAttach(fd);
  if (m == nullptr || m->state == MemberState::kPending || m->state == MemberState::kBound) return nullptr;
  return m;
}

bool ChannelNonBlocking(int fd) {
  int fl = Real().fcntl(fd, F_GETFL);
  return fl >= 0 && (fl & O_NONBLOCK);
}

}  // namespace

ssize_t ReceiveMessage(int fd, struct msghdr* msg, int flags) {
  ssize_t n = Real().recvmsg(fd, msg, flags);
  if (__builtin_expect(n >= 0 && msg != nullptr && msg->msg_controllen != 0, 0)) NoteReceivedChannels(msg);
  return n;
}

ssize_t Recvmsg(int fd, struct msghdr* msg, int flags) {
  Member* m = EmulatedMember(fd);
  if (__builtin_expect(m == nullptr, 1)) return ReceiveMessage(fd, msg, flags);
  if (IsListener(m)) {
    errno = ENOTCONN;
    return -1;
  }
  if (msg == nullptr) {
    errno = EFAULT;
    return -1;
  }
  return ReceiveDatagram(fd, m, msg, flags);
}

ssize_t Recvfrom(int fd, void* buf, size_t len, int flags, struct sockaddr* from, socklen_t* from_len) {
  Member* m = EmulatedMember(fd);
  if (__builtin_expect(m == nullptr, 1)) {
    return Real().recvfrom(fd, buf, len, flags, from, from_len);
  }
  if (IsListener(m)) {
    errno = ENOTCONN;
    return -1;
  }
  struct iovec iov = {buf, len};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (from != nullptr && from_len != nullptr) {
    msg.msg_name = from;
    msg.msg_namelen = *from_len;
  }
  ssize_t n = ReceiveDatagram(fd, m, &msg, flags);
  if (n >= 0 && from != nullptr && from_len != nullptr) *from_len = msg.msg_namelen;
  return n;
}

ssize_t Read(int fd, void* buf, size_t len) {
  Member* m = EmulatedMember(fd);
  if (__builtin_expect(m == nullptr, 1)) {
    return Real().read(fd, buf, len);
  }
  return Recvfrom(fd, buf, len, 0, nullptr, nullptr);
}

ssize_t Readv(int fd, const struct iovec* iov, int count) {
  Member* m = EmulatedMember(fd);
  if (__builtin_expect(m == nullptr, 1)) {
    return Real().readv(fd, iov, count);
  }
  if (count < 0) {
    errno = EINVAL;
    return -1;
  }
  struct msghdr msg {};
  msg.msg_iov = const_cast<struct iovec*>(iov);
  msg.msg_iovlen = static_cast<size_t>(count);
  return Recvmsg(fd, &msg, 0);
}

int Recvmmsg(int fd, struct mmsghdr* msgs, unsigned int count, int flags, struct timespec* timeout) {
  Member* m = EmulatedMember(fd);
  if (__builtin_expect(m == nullptr, 1)) {
    return Real().recvmmsg(fd, msgs, count, flags, timeout);
  }
  if (IsListener(m)) {
    errno = ENOTCONN;
    return -1;
  }
  if (count > 1024) count = 1024;  // UIO_MAXIOV, as the kernel clamps
  EnsureLinkWatcher();
  if (count <= kBatch && !(flags & MSG_ERRQUEUE) && !(flags & MSG_OOB) && !HasRing(m)) {
    int n = ReceiveDatagramBatch(fd, m, msgs, count, flags, timeout);
    if (n != -2) return n;
  }
  struct timespec deadline {};
  if (timeout != nullptr) {
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout->tv_sec;
    deadline.tv_nsec += timeout->tv_nsec;
    if (deadline.tv_nsec >= 1000000000) {
      deadline.tv_sec++;
      deadline.tv_nsec -= 1000000000;
    }
  }
  unsigned int received = 0;
  while (received < count) {
    int f = flags & ~MSG_WAITFORONE;
    if (received > 0 && (flags & MSG_WAITFORONE)) f |= MSG_DONTWAIT;
    ssize_t n = ReceiveDatagram(fd, m, &msgs[received].msg_hdr, f);
    if (n < 0) {
      if (received > 0) break;  // the error shows on the next call, as in the kernel
      return -1;
    }
    msgs[received++].msg_len = static_cast<unsigned int>(n);
    if (timeout != nullptr) {
      struct timespec now {};
      clock_gettime(CLOCK_MONOTONIC, &now);
      if (now.tv_sec > deadline.tv_sec || (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec)) break;
    }
  }
  return static_cast<int>(received);
}

ssize_t Sendmsg(int fd, const struct msghdr* msg, int flags) {
  Member* m = EmulatedMember(fd);
  if (__builtin_expect(m == nullptr, 1)) {
    return Real().sendmsg(fd, msg, flags);
  }
  if (IsListener(m)) {
    errno = EPIPE;
    return -1;
  }
  if (msg == nullptr) {
    errno = EFAULT;
    return -1;
  }
  return SendDatagram(m, msg, flags, ChannelNonBlocking(fd));
}

ssize_t Sendto(int fd, const void* buf, size_t len, int flags, const struct sockaddr* to, socklen_t to_len) {
  Member* m = EmulatedMember(fd);
  if (__builtin_expect(m == nullptr, 1)) {
    return Real().sendto(fd, buf, len, flags, to, to_len);
  }
  if (IsListener(m)) {
    errno = EPIPE;
    return -1;
  }
  struct iovec iov = {const_cast<void*>(buf), len};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_name = const_cast<struct sockaddr*>(to);
  msg.msg_namelen = to != nullptr ? to_len : 0;
  return SendDatagram(m, &msg, flags, ChannelNonBlocking(fd));
}

ssize_t Write(int fd, const void* buf, size_t len) {
  Member* m = EmulatedMember(fd);
  if (__builtin_expect(m == nullptr, 1)) {
    return Real().write(fd, buf, len);
  }
  return Sendto(fd, buf, len, 0, nullptr, 0);
}

ssize_t Writev(int fd, const struct iovec* iov, int count) {
  Member* m = EmulatedMember(fd);
  if (__builtin_expect(m == nullptr, 1)) {
    return Real().writev(fd, iov, count);
  }
  if (count < 0) {
    errno = EINVAL;
    return -1;
  }
  struct msghdr msg {};
  msg.msg_iov = const_cast<struct iovec*>(iov);
  msg.msg_iovlen = static_cast<size_t>(count);
  return Sendmsg(fd, &msg, 0);
}

int Sendmmsg(int fd, struct mmsghdr* msgs, unsigned int count, int flags) {
  Member* m = EmulatedMember(fd);
  if (__builtin_expect(m == nullptr, 1)) {
    return Real().sendmmsg(fd, msgs, count, flags);
  }
  if (IsListener(m)) {
    errno = EPIPE;
    return -1;
  }
  bool nonblocking = ChannelNonBlocking(fd);
  unsigned int sent = 0;
  for (; sent < count && sent < 1024; ++sent) {
    ssize_t n = SendDatagram(m, &msgs[sent].msg_hdr, flags, nonblocking);
    if (n < 0) {
      if (sent > 0) break;
      return -1;
    }
    msgs[sent].msg_len = static_cast<unsigned int>(n);
  }
  return static_cast<int>(sent);
}

// FIONREAD on a UDP socket is the size of the next datagram, not of the queue.
int NextDatagramSize(int fd, int* size) {
  if (Member* m = LookupMember(fd); m != nullptr && HasRing(m)) {
    rp_ring ring = m->ring;
    rp_ring_record r;
    const uint8_t* bytes = nullptr;
    uint64_t at = 0;
    if (ring.header != nullptr && rp_ring_next(&ring, &r, &bytes, &at) == RP_RING_READY) {
      *size = static_cast<int>(r.data_length);
      return 0;
    }
  }
  DatagramPrefix prefix;
  struct iovec iov = {&prefix, sizeof(prefix)};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  ssize_t n = Real().recvmsg(fd, &msg, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC);
  if (n < 0) {
    if (errno != EAGAIN) return -1;
    *size = 0;
    return 0;
  }
  *size = n >= static_cast<ssize_t>(sizeof(prefix)) ? static_cast<int>(n - sizeof(prefix)) : 0;
  return 0;
}

}  // namespace reuseport::shim
