#include "member_ring.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "raw_log.h"
#include "real_calls.h"

namespace reuseport::shim {

bool AdoptRing(Member* m, int fd) {
  struct stat st {};
  if (fstat(fd, &st) != 0 || st.st_size <= 0) {
    Real().close(fd);
    return false;
  }
  size_t size = static_cast<size_t>(st.st_size);
  void* memory = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (memory == MAP_FAILED) {
    Real().close(fd);
    return false;
  }
  rp_ring ring{};
  if (rp_ring_attach(&ring, memory, size) != 0) {
    munmap(memory, size);
    Real().close(fd);
    return false;
  }
  m->ring = ring;
  m->ring_map_size = size;
  m->ring_fd = AdoptPrivateFd(fd, m);
  return true;
}

void DropRing(Member* m) {
  if (m->ring.header != nullptr) {
    // Zero pages over the mapping, in one step: a reader in another thread sees
    // an empty ring, never an unmapped page.
    void* at = m->ring.header;
    mmap(at, m->ring_map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  }
  m->ring = rp_ring{};
  m->ring_map_size = 0;
  if (m->ring_fd >= 0) {
    UnmarkPrivateFd(m->ring_fd);
    Real().close(m->ring_fd);
    m->ring_fd = -1;
  }
}

}  // namespace reuseport::shim
