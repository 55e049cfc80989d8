// Reaps the daemons this test process adopts, as init would.
//
// The test support makes every test process a subreaper (subprocess.cc), so a
// daemon an init script starts (start-stop-daemon --background, setsid) is
// adopted by the test rather than by init, and when it exits it stays a
// zombie until someone waits for it; start-stop-daemon --stop then waits for
// a process that is long gone. OrphanReaper waits for exited children in
// another session than ours: daemons are (setsid), the children Subprocess
// starts are not (they are left to Subprocess::Wait).
//
// Thread-safety: one owner; the reaping runs on a thread of its own.
#ifndef REUSEPORT_TESTS_RELEASE_ORPHAN_REAPER_H_
#define REUSEPORT_TESTS_RELEASE_ORPHAN_REAPER_H_

#include <atomic>
#include <thread>

namespace reuseport::testing {

class OrphanReaper {
 public:
  OrphanReaper();
  ~OrphanReaper();
  OrphanReaper(const OrphanReaper&) = delete;
  OrphanReaper& operator=(const OrphanReaper&) = delete;

  // Daemons reaped so far.
  int reaped() const { return reaped_.load(); }

 private:
  void Run();
  std::atomic<bool> stop_{false};
  std::atomic<int> reaped_{0};
  std::thread thread_;
};

}  // namespace reuseport::testing

#endif  // REUSEPORT_TESTS_RELEASE_ORPHAN_REAPER_H_
