// A UDP member's datagram ring as the broker holds it: shared memory laid out
// as include/reuseport/datagram_ring.h says, the fd the member's processes map
// it through, and the producer's cursor.
//
// The memory is a file made in the control socket's directory (a tmpfs, /run,
// on most systems) and unlinked at once; its pages are written out when it is
// made, so a full file system is an error here (the member then gets its
// datagrams through its channel) and never a SIGBUS later.
//
// Thread-safety: none; the broker's event loop. The ring itself is shared
// with the member's processes, which datagram_ring.h's protocol accounts for.
#ifndef REUSEPORT_BROKER_MEMBER_RING_H_
#define REUSEPORT_BROKER_MEMBER_RING_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "reuseport/datagram_ring.h"
#include "unique_fd.h"

namespace reuseport::broker {

class MemberRing {
 public:
  // A new ring of about `bytes` bytes in the directory `directory_fd`.
  static absl::StatusOr<std::unique_ptr<MemberRing>> Create(int directory_fd, uint64_t bytes);
  // The ring a member presents after a broker restart (REJOIN): only one a
  // broker of this uid made (an unlinked file of ours: nothing a user could
  // hand in, no file system that could stall the broker's page faults).
  // Its pending count is recounted; RecordsWaiting() says whether to ring.
  static absl::StatusOr<std::unique_ptr<MemberRing>> Adopt(UniqueFd fd);

  ~MemberRing();
  MemberRing(const MemberRing&) = delete;
  MemberRing& operator=(const MemberRing&) = delete;

  int fd() const { return fd_.get(); }
  void* memory() const { return memory_; }
  rp_ring* ring() { return &ring_; }
  uint64_t& head() { return head_; }
  uint64_t size_bytes() const { return size_; }
  // Bytes written and not yet taken (0 when the member broke the cursors).
  uint64_t QueuedBytes();
  // Datagrams in it when it was adopted (ring the doorbell for them).
  int64_t records_at_adoption() const { return records_at_adoption_; }
  // Set once the member's process broke the cursors or shrank the file
  // (ring_fault_guard.h): nothing more goes in.
  bool broken = false;

 private:
  MemberRing(UniqueFd fd, void* memory, size_t size);

  UniqueFd fd_;
  void* memory_ = nullptr;
  size_t size_ = 0;
  rp_ring ring_{};
  uint64_t head_ = 0;
  int64_t records_at_adoption_ = 0;
};

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_MEMBER_RING_H_
