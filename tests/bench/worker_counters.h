// Live counters shared by the orchestrator and its workers: a small file of
// 64-byte slots (one cache line each, so workers do not share lines), mapped
// MAP_SHARED by both sides. A worker adds to its own slot after each batch; the
// orchestrator reads any slot at any time. Nothing to ask, nothing to parse, and
// a worker's count survives its exit.
//
// Thread-safety: Add from one writer per slot; Read from anyone (relaxed atomics:
// the counts are statistics, not synchronisation).
#ifndef REUSEPORT_TESTS_BENCH_WORKER_COUNTERS_H_
#define REUSEPORT_TESTS_BENCH_WORKER_COUNTERS_H_

#include <cstdint>
#include <string>

namespace reuseport::bench {

class WorkerCounters {
 public:
  static constexpr int kSlots = 1024;

  WorkerCounters() = default;
  WorkerCounters(const WorkerCounters&) = delete;
  WorkerCounters& operator=(const WorkerCounters&) = delete;
  ~WorkerCounters();

  // Creates (create=true, zero-filled) or opens the file at `path` and maps it.
  bool Map(const std::string& path, bool create);
  bool mapped() const { return base_ != nullptr; }

  void Add(int slot, uint64_t n) {
    if (base_ != nullptr) __atomic_fetch_add(&base_[Index(slot)], n, __ATOMIC_RELAXED);
  }
  uint64_t Read(int slot) const {
    return base_ == nullptr ? 0 : __atomic_load_n(&base_[Index(slot)], __ATOMIC_RELAXED);
  }
  void Zero(int slot) {
    if (base_ != nullptr) __atomic_store_n(&base_[Index(slot)], 0, __ATOMIC_RELAXED);
  }
  // `n` consecutive zeroed slots for a new set of workers (the orchestrator
  // only; slots are reused round-robin, long after their workers are gone).
  int Allocate(int n) {
    if (next_ + n > kSlots) next_ = 0;
    int first = next_;
    next_ += n;
    for (int i = 0; i < n; ++i) Zero(first + i);
    return first;
  }

 private:
  static constexpr int kWordsPerSlot = 8;  // 64 bytes
  static int Index(int slot) { return (slot & (kSlots - 1)) * kWordsPerSlot; }

  uint64_t* base_ = nullptr;
  int next_ = 0;
};

}  // namespace reuseport::bench

#endif  // REUSEPORT_TESTS_BENCH_WORKER_COUNTERS_H_
