#include "member_ring.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "ring_fault_guard.h"

namespace reuseport::broker {

namespace {

constexpr uint64_t kMaxRingBytes = uint64_t{1} << 30;

absl::StatusOr<void*> Map(int fd, size_t size) {
  void* memory = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (memory == MAP_FAILED) return absl::ErrnoToStatus(errno, "mmap of a datagram ring");
  return memory;
}

}  // namespace

MemberRing::MemberRing(UniqueFd fd, void* memory, size_t size) : fd_(std::move(fd)), memory_(memory), size_(size) {}

MemberRing::~MemberRing() {
  if (memory_ != nullptr) munmap(memory_, size_);
}

absl::StatusOr<std::unique_ptr<MemberRing>> MemberRing::Create(int directory_fd, uint64_t bytes) {
  if (directory_fd < 0) return absl::FailedPreconditionError("no directory for datagram rings");
  bytes = (bytes + 4095) & ~uint64_t{4095};
  if (bytes < RP_RING_HEADER_SIZE + 4096 || bytes > kMaxRingBytes) {
    return absl::InvalidArgumentError(absl::StrFormat("ring of %d bytes", bytes));
  }
  static uint64_t counter = 0;
  std::string name = absl::StrFormat(".ring.%d.%d", getpid(), ++counter);
  UniqueFd fd(openat(directory_fd, name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return absl::ErrnoToStatus(errno, "create a datagram ring");
  unlinkat(directory_fd, name.c_str(), 0);
  // Every page allocated now: a full tmpfs says ENOSPC here, not SIGBUS later.
  static const std::vector<char> zeros(64 << 10, 0);
  for (uint64_t at = 0; at < bytes; at += zeros.size()) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(zeros.size(), bytes - at));
    if (pwrite(fd.get(), zeros.data(), n, static_cast<off_t>(at)) != static_cast<ssize_t>(n)) {
      return absl::ErrnoToStatus(errno == 0 ? ENOSPC : errno, "fill a datagram ring");
    }
  }
  absl::StatusOr<void*> memory = Map(fd.get(), bytes);
  if (!memory.ok()) return memory.status();
  rp_ring_format(*memory, bytes);
  auto ring = std::unique_ptr<MemberRing>(new MemberRing(std::move(fd), *memory, bytes));
  if (rp_ring_attach(&ring->ring_, *memory, bytes) != 0) return absl::InternalError("a fresh ring does not attach");
  return ring;
}

absl::StatusOr<std::unique_ptr<MemberRing>> MemberRing::Adopt(UniqueFd fd) {
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return absl::ErrnoToStatus(errno, "fstat of a datagram ring");
  if (!S_ISREG(st.st_mode) || st.st_size < static_cast<off_t>(RP_RING_HEADER_SIZE + 4096) ||
      static_cast<uint64_t>(st.st_size) > kMaxRingBytes) {
    return absl::InvalidArgumentError("not a datagram ring");
  }
  if (st.st_uid != geteuid() || st.st_nlink != 0) {
    return absl::PermissionDeniedError("not a datagram ring a broker made");
  }
  size_t size = static_cast<size_t>(st.st_size);
  absl::StatusOr<void*> memory = Map(fd.get(), size);
  if (!memory.ok()) return memory.status();
  auto ring = std::unique_ptr<MemberRing>(new MemberRing(std::move(fd), *memory, size));
  RingAccess access(*memory, size);  // its processes may shrink it meanwhile
  if (rp_ring_attach(&ring->ring_, *memory, size) != 0) return absl::InvalidArgumentError("not a datagram ring");
  ring->head_ = __atomic_load_n(&ring->ring_.header->head, __ATOMIC_ACQUIRE);
  uint64_t claim;
  if (rp_ring_claim_checked(&ring->ring_, ring->head_, &claim) != 0 || ring->head_ % 8 != 0) {
    return absl::InvalidArgumentError("a datagram ring with broken cursors");
  }
  // The previous broker may have stopped between publishing and counting,
  // or a consumer between taking and counting: count what is there.
  int64_t records = rp_ring_count_records(&ring->ring_);
  if (records < 0) return absl::InvalidArgumentError("a datagram ring with broken records");
  __atomic_store_n(&ring->ring_.header->pending, records, __ATOMIC_RELEASE);
  ring->records_at_adoption_ = records;
  if (access.faulted()) return absl::InvalidArgumentError("a datagram ring that shrank");
  return ring;
}

uint64_t MemberRing::QueuedBytes() {
  if (broken) return 0;
  RingAccess access(memory_, size_);
  uint64_t claim;
  bool ok = rp_ring_claim_checked(&ring_, head_, &claim) == 0;
  if (access.faulted()) broken = true;
  return ok && !broken ? head_ - claim : 0;
}

}  // namespace reuseport::broker
