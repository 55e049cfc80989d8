#include "worker_counters.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

namespace reuseport::bench {

namespace {
constexpr size_t kBytes = static_cast<size_t>(WorkerCounters::kSlots) * 64;
}

WorkerCounters::~WorkerCounters() {
  if (base_ != nullptr) munmap(base_, kBytes);
}

bool WorkerCounters::Map(const std::string& path, bool create) {
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0), 0600);
  if (fd < 0) return false;
  if (create && ftruncate(fd, static_cast<off_t>(kBytes)) != 0) {
    close(fd);
    return false;
  }
  void* p = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) return false;
  base_ = static_cast<uint64_t*>(p);
  return true;
}

}  // namespace reuseport::bench
