// Fuzzes ReceiveRecord, the broker's receive path, for real: each input is a
// record sent over a fresh SOCK_SEQPACKET socketpair with real fds attached
// (SCM_RIGHTS), then received as the broker receives it.
//
// Input, front to back (missing bytes read as 0):
//   byte 0     number of fds to attach, modulo 17 (0..16)
//   byte 1     options (kOption* below)
//   next N     one byte per fd: its kind (fd_kinds.h, modulo 16)
//   the rest   the record's bytes
//
// Invariants, each a trap when broken:
//   - every fd that arrives is either handed over in result.record.fds (kRecord)
//     or closed: the process's open-fd count is the same before and after,
//     once the harness has closed everything it opened;
//   - kRecord carries at most RP_MAX_FDS fds, all close-on-exec, the very
//     files that were sent, in order, and the record's exact bytes;
//   - the status is the one the bytes and fds call for (ParseRecord's verdict
//     on the bytes, more than RP_MAX_FDS fds rejected, kClosed only at end of
//     stream, kWouldBlock only when nothing was sent).
// Nothing is reused between inputs, so nothing can hide a leak.
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "byte_reader.h"
#include "fd_kinds.h"
#include "fuzz_check.h"
#include "open_fds.h"
#include "reuseport/protocol.h"
#include "scm_rights.h"
#include "wire.h"

using reuseport::broker::ParseRecord;
using reuseport::broker::ReceiveRecord;
using reuseport::broker::ReceiveResult;
using reuseport::broker::ReceiveStatus;
using reuseport::broker::Record;
using reuseport::broker::RecordError;
using reuseport::broker::UniqueFd;
using namespace reuseport::fuzz;

namespace {

constexpr uint8_t kOptionPassCredentials = 1 << 0;  // SO_PASSCRED on the receiver: an extra control message
constexpr uint8_t kOptionMaxFds = 1 << 1;           // attach SCM_MAX_FD (253) fds instead of the count
constexpr uint8_t kOptionOversize = 1 << 2;         // pad the record beyond RP_MAX_RECORD
constexpr uint8_t kOptionCloseSender = 1 << 3;      // close the sending end after sending
constexpr uint8_t kOptionSendNothing = 1 << 4;      // send no record at all

constexpr int kScmMaxFd = 253;  // the kernel's limit per SCM_RIGHTS message

struct FileId {
  dev_t dev;
  ino_t ino;
};

FileId IdOf(int fd) {
  struct stat st {};
  fstat(fd, &st);
  return FileId{st.st_dev, st.st_ino};
}

std::vector<UniqueFd> MakeAttachments(const std::vector<FdKind>& kinds, bool max_fds) {
  std::vector<UniqueFd> fds;
  if (max_fds) {
    UniqueFd null_fd = MakeFd(FdKind::kDevNull, 0);
    for (int i = 0; i < kScmMaxFd && null_fd; ++i) fds.emplace_back(fcntl(null_fd.get(), F_DUPFD_CLOEXEC, 0));
    return fds;
  }
  for (FdKind k : kinds) {
    UniqueFd fd = MakeFd(k, 0);
    if (fd) fds.push_back(std::move(fd));
  }
  return fds;
}

bool SendWithFds(int fd, const std::string& bytes, const std::vector<UniqueFd>& fds) {
  std::vector<int> numbers;
  for (const UniqueFd& f : fds) numbers.push_back(f.get());
  return reuseport::testing::SendWithFds(fd, bytes.data(), bytes.size(), numbers, MSG_DONTWAIT) >= 0;
}

void CheckDelivered(const ReceiveResult& r, const std::string& bytes, const std::vector<FileId>& sent) {
  const Record& rec = r.record;
  FUZZ_CHECK(rec.fds.size() <= RP_MAX_FDS, absl::StrFormat("%d fds in an accepted record", rec.fds.size()));
  FUZZ_CHECK(rec.fds.size() == sent.size(), absl::StrFormat("%d fds sent, %d received", sent.size(), rec.fds.size()));
  for (size_t i = 0; i < rec.fds.size(); ++i) {
    int flags = fcntl(rec.fds[i].get(), F_GETFD);
    FUZZ_CHECK(flags >= 0 && (flags & FD_CLOEXEC), absl::StrFormat("fd %d: F_GETFD %d", rec.fds[i].get(), flags));
    FileId got = IdOf(rec.fds[i].get());
    FUZZ_CHECK(got.dev == sent[i].dev && got.ino == sent[i].ino, absl::StrFormat("fd %d is not the file sent", i));
  }
  std::string received(reinterpret_cast<const char*>(&rec.header), sizeof(rp_header));
  received += rec.payload;
  received += rec.trailing;
  FUZZ_CHECK(received == bytes, absl::StrFormat("%d bytes sent, %d reassembled", bytes.size(), received.size()));
}

void CheckResult(const ReceiveResult& r, bool sent_record, bool sender_closed, const std::string& bytes,
                 const std::vector<FileId>& sent) {
  if (!sent_record) {
    ReceiveStatus want = sender_closed ? ReceiveStatus::kClosed : ReceiveStatus::kWouldBlock;
    FUZZ_CHECK(r.status == want, absl::StrFormat("status %d with nothing sent", static_cast<int>(r.status)));
    return;
  }
  FUZZ_CHECK(r.status != ReceiveStatus::kWouldBlock && r.status != ReceiveStatus::kFailed,
             absl::StrFormat("status %d for a record that was sent: %s", static_cast<int>(r.status), r.error.reason));
  if (r.status == ReceiveStatus::kClosed) {
    // An empty record and end of stream both read as 0 bytes; only when both
    // are true may the record be taken for the end.
    FUZZ_CHECK(bytes.empty() && sent.empty() && sender_closed, "kClosed for a record that was sent, on an open link");
    return;
  }
  Record expected;
  RecordError expected_error;
  bool parses = ParseRecord(absl::MakeConstSpan(bytes.data(), std::min<size_t>(bytes.size(), RP_MAX_RECORD)),
                            bytes.size() > RP_MAX_RECORD, &expected, &expected_error);
  if (!parses) {
    FUZZ_CHECK(r.status == ReceiveStatus::kRejected && r.error.error == expected_error.error,
               absl::StrFormat("status %d error %d; ParseRecord says %d (%s)", static_cast<int>(r.status), r.error.error,
                               expected_error.error, expected_error.reason));
    return;
  }
  if (sent.size() > RP_MAX_FDS) {
    FUZZ_CHECK(r.status == ReceiveStatus::kRejected && r.error.error == EBADMSG,
               absl::StrFormat("%d fds attached, status %d error %d", sent.size(), static_cast<int>(r.status),
                               r.error.error));
    FUZZ_CHECK(r.error.header_readable, "a rejected well-framed record lost its header");
    return;
  }
  FUZZ_CHECK(r.status == ReceiveStatus::kRecord,
             absl::StrFormat("status %d for a valid record: %s", static_cast<int>(r.status), r.error.reason));
  CheckDelivered(r, bytes, sent);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ByteReader in(data, size);
  int fd_count = in.Byte() % 17;
  uint8_t options = in.Byte();
  std::vector<FdKind> kinds;
  for (int i = 0; i < fd_count; ++i) kinds.push_back(FdKindFromByte(in.Byte()));
  std::string bytes = in.Rest();
  if ((options & kOptionOversize) && bytes.size() <= RP_MAX_RECORD) bytes.resize(RP_MAX_RECORD + 1 + bytes.size() % 64, '\0');

  const int before = CountOpenFds();
  {
    int sv[2];
    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0, strerror(errno));
    UniqueFd receiver(sv[0]), sender(sv[1]);
    if (options & kOptionPassCredentials) {
      int one = 1;
      setsockopt(receiver.get(), SOL_SOCKET, SO_PASSCRED, &one, sizeof(one));
    }
    bool sent_record = false;
    std::vector<FileId> sent;
    if (!(options & kOptionSendNothing)) {
      // The harness's copies close at the end of this block: from then on the
      // only references are the ones in flight.
      std::vector<UniqueFd> fds = MakeAttachments(kinds, options & kOptionMaxFds);
      sent_record = SendWithFds(sender.get(), bytes, fds);
      if (sent_record) {
        for (const UniqueFd& fd : fds) sent.push_back(IdOf(fd.get()));
      }
    }
    bool sender_closed = (options & kOptionCloseSender) != 0;
    if (sender_closed) sender.reset();

    std::vector<char> buffer;
    ReceiveResult r = ReceiveRecord(receiver.get(), buffer);
    CheckResult(r, sent_record, sender_closed, bytes, sent);
  }
  const int after = CountOpenFds();
  FUZZ_CHECK(after == before, absl::StrFormat("%d fds open before, %d after; open now:\n%s", before, after,
                                              DescribeOpenFds()));
  return 0;
}
