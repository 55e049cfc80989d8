// fstat and clock_gettime for the shim's own calls, as the system calls they
// wrap: glibc before 2.33 has no fstat symbol and glibc before 2.17 keeps
// clock_gettime in librt (glibc_floor.h says why that matters). Hidden, like
// everything in the shim but the hooks, so the host program never sees them;
// the shim's calls bind here at link time.
//
// Neither is on a hot path: fstat identifies sockets when they are set up,
// clock_gettime times broker round trips and recvmmsg timeouts.
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

extern "C" {

int fstat(int fd, struct stat* st) noexcept { return static_cast<int>(syscall(SYS_fstat, fd, st)); }

int clock_gettime(clockid_t clock, struct timespec* ts) noexcept {
  return static_cast<int>(syscall(SYS_clock_gettime, clock, ts));
}

}  // extern "C"
