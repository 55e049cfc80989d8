#include "wire.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "absl/strings/str_format.h"
#include "reuseport/fd_passing.h"

namespace reuseport::broker {

bool ParseRecord(absl::Span<const char> data, bool truncated, Record* record, RecordError* error) {
  *error = RecordError{};
  if (data.size() < sizeof(rp_header)) {
    error->error = EBADMSG;
    error->reason = absl::StrFormat("record of %d bytes is shorter than a header", data.size());
    return false;
  }
  rp_header h;
  memcpy(&h, data.data(), sizeof(h));
  error->header = h;
  if (h.magic != RP_MAGIC) {
    error->error = EBADMSG;
    error->reason = absl::StrFormat("bad magic 0x%08x", h.magic);
    return false;
  }
  error->header_readable = true;
  if (h.version != RP_VERSION) {
    error->error = EPROTONOSUPPORT;
    error->reason = absl::StrFormat("protocol version %d, this broker speaks %d", h.version, RP_VERSION);
    return false;
  }
  if (truncated) {
    error->error = EMSGSIZE;
    error->reason = absl::StrFormat("record longer than %d bytes", RP_MAX_RECORD);
    return false;
  }
  if (h.header_size != sizeof(rp_header)) {
    error->error = EBADMSG;
    error->reason = absl::StrFormat("header_size %d, expected %d", h.header_size, sizeof(rp_header));
    return false;
  }
  if (h.payload_size > data.size() - sizeof(rp_header)) {
    error->error = EBADMSG;
    error->reason = absl::StrFormat("payload_size %d exceeds the %d bytes after the header", h.payload_size,
                                    data.size() - sizeof(rp_header));
    return false;
  }
  record->header = h;
  const char* payload = data.data() + sizeof(rp_header);
  record->payload.assign(payload, h.payload_size);
  record->trailing.assign(payload + h.payload_size, data.size() - sizeof(rp_header) - h.payload_size);
  return true;
}

ExtractedFds ExtractFds(struct msghdr* msg, size_t max_fds) {
  int taken_fds[RP_MAX_FDS];
  rp_fds_taken taken;
  rp_fds_take(msg, taken_fds, max_fds < RP_MAX_FDS ? max_fds : RP_MAX_FDS, ::close, &taken);
  ExtractedFds out;
  out.control_truncated = taken.truncated != 0;
  out.unexpected_control = taken.other_control != 0;
  out.dropped = taken.dropped;
  for (size_t i = 0; i < taken.count; ++i) out.fds.emplace_back(taken_fds[i]);
  return out;
}

ReceiveResult ReceiveRecord(int fd, std::vector<char>& buffer) {
  ReceiveResult result;
  if (buffer.size() < RP_MAX_RECORD) buffer.resize(RP_MAX_RECORD);
  // Room for more fds than any message carries, so that extra ones are seen
  // (and closed) rather than silently truncated by the kernel.
  alignas(struct cmsghdr) char control[RP_FDS_CONTROL_SPACE(253)];
  struct iovec iov = {buffer.data(), buffer.size()};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN) {
      result.status = ReceiveStatus::kWouldBlock;
    } else {
      result.status = ReceiveStatus::kFailed;
      result.error.error = errno;
      result.error.reason = strerror(errno);
    }
    return result;
  }
  ExtractedFds fds = ExtractFds(&msg, RP_MAX_FDS);
  if (n == 0 && fds.fds.empty() && fds.dropped == 0) {
    // SOCK_SEQPACKET reads 0 both at end of stream and for an empty record.
    struct pollfd p = {fd, POLLRDHUP, 0};
    if (poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP))) {
      result.status = ReceiveStatus::kClosed;
      return result;
    }
  }
  size_t length = static_cast<size_t>(n) < buffer.size() ? static_cast<size_t>(n) : buffer.size();
  bool truncated = (msg.msg_flags & MSG_TRUNC) || static_cast<size_t>(n) > buffer.size();
  if (!ParseRecord(absl::MakeConstSpan(buffer.data(), length), truncated, &result.record, &result.error)) {
    result.status = ReceiveStatus::kRejected;
    return result;  // fds close with `fds`
  }
  if (fds.control_truncated || fds.dropped > 0) {
    result.status = ReceiveStatus::kRejected;
    result.error.error = EBADMSG;
    result.error.reason = absl::StrFormat("%d file descriptors attached, at most %d allowed",
                                          fds.fds.size() + fds.dropped, RP_MAX_FDS);
    result.error.header = result.record.header;
    result.error.header_readable = true;
    return result;
  }
  result.record.fds = std::move(fds.fds);
  result.status = ReceiveStatus::kRecord;
  return result;
}

rp_header MakeHeader(uint16_t opcode, uint32_t payload_size, uint64_t request_id) {
  return rp_request_header(opcode, payload_size, request_id);
}

rp_header MakeReply(const rp_header& request, int status, uint32_t payload_size) {
  rp_header h = MakeHeader(request.opcode, payload_size, request.request_id);
  h.flags = RP_FLAG_REPLY;
  h.status = status;
  return h;
}

int SendRecord(int fd, const rp_header& header, const void* payload, size_t payload_size, const void* trailing,
               size_t trailing_size, absl::Span<const int> fds, int flags) {
  struct iovec iov[3];
  int n = 0;
  iov[n++] = {const_cast<rp_header*>(&header), sizeof(header)};
  if (payload_size > 0) iov[n++] = {const_cast<void*>(payload), payload_size};
  if (trailing_size > 0) iov[n++] = {const_cast<void*>(trailing), trailing_size};
  struct msghdr msg {};
  msg.msg_iov = iov;
  msg.msg_iovlen = static_cast<size_t>(n);
  alignas(struct cmsghdr) char control[RP_FDS_CONTROL_SPACE(RP_MAX_FDS)];
  if (fds.size() > RP_MAX_FDS) return EINVAL;
  rp_fds_attach(&msg, control, sizeof(control), fds.data(), fds.size());
  for (;;) {
    if (sendmsg(fd, &msg, flags | MSG_NOSIGNAL) >= 0) return 0;
    if (errno != EINTR) return errno;
  }
}

}  // namespace reuseport::broker
