// Reading and writing protocol records (include/reuseport/protocol.h) on
// SOCK_SEQPACKET sockets, with their fds.
//
// ParseRecord is pure (no I/O) so that it can be fuzzed; ReceiveRecord wraps it
// with recvmsg and owns every fd that arrives: an fd is either handed to the
// caller in Record::fds or closed, on every path.
#ifndef REUSEPORT_BROKER_WIRE_H_
#define REUSEPORT_BROKER_WIRE_H_

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "reuseport/protocol.h"
#include "unique_fd.h"

namespace reuseport::broker {

struct Record {
  rp_header header{};
  std::string payload;   // header.payload_size bytes
  std::string trailing;  // what follows the payload
  std::vector<UniqueFd> fds;
};

// Why a record was rejected: the errno for the reply, and words for the log.
struct RecordError {
  int error = 0;  // EBADMSG, EPROTONOSUPPORT, EMSGSIZE, ...
  std::string reason;
  rp_header header{};   // as far as it could be read (for the reply's request_id)
  bool header_readable = false;
};

// Validates the framing of one record of `length` bytes (the bytes are in
// `data`; `truncated` is set when the kernel reported MSG_TRUNC). On success
// fills record->header/payload/trailing; fds are not touched.
bool ParseRecord(absl::Span<const char> data, bool truncated, Record* record, RecordError* error);

enum class ReceiveStatus { kRecord, kWouldBlock, kClosed, kRejected, kFailed };

struct ReceiveResult {
  ReceiveStatus status = ReceiveStatus::kFailed;
  Record record;       // kRecord
  RecordError error;   // kRejected (fds already closed) / kFailed (error.error = errno)
};

// Receives one record from fd without blocking. `buffer` is reused between calls.
ReceiveResult ReceiveRecord(int fd, std::vector<char>& buffer);

// Takes the SCM_RIGHTS fds out of a received msghdr (closing any beyond
// `max_fds`, which is at most RP_MAX_FDS) with include/reuseport/fd_passing.h;
// reports truncation and control messages of other kinds.
struct ExtractedFds {
  std::vector<UniqueFd> fds;
  bool control_truncated = false;
  bool unexpected_control = false;
  size_t dropped = 0;
};
ExtractedFds ExtractFds(struct msghdr* msg, size_t max_fds);

rp_header MakeHeader(uint16_t opcode, uint32_t payload_size, uint64_t request_id);
rp_header MakeReply(const rp_header& request, int status, uint32_t payload_size);

// Sends one record. Returns 0 or an errno value (EAGAIN when the peer's queue
// is full and flags has MSG_DONTWAIT).
int SendRecord(int fd, const rp_header& header, const void* payload, size_t payload_size, const void* trailing,
               size_t trailing_size, absl::Span<const int> fds, int flags);

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_WIRE_H_
