// The broker's pid file (--pidfile), for init scripts that track a daemon by
// one: written once the broker serves, and followed across a SIGHUP hand-off
// (the successor writes its own pid; the broker it replaced leaves the file
// alone).
//
// Written whole under a temporary name and renamed into place, so a reader
// sees the old content or the new, never a partial line. Written before the
// system call filter is installed (it needs fchmod, which the filter forbids).
//
// Thread-safety: none needed; called from main() only.
#ifndef REUSEPORT_BROKER_PID_FILE_H_
#define REUSEPORT_BROKER_PID_FILE_H_

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"

namespace reuseport::broker {

class PidFile {
 public:
  // Writes "<pid>\n" to `path` (mode 0644: init scripts and `ps` users read
  // it) and keeps its directory open: once filtered, the broker may remove a
  // file only through a directory fd the filter names (hardening.h).
  absl::Status Write(const std::string& path, pid_t pid);

  // Removes the file if it still names `pid`; a file naming another process
  // (a successor, or a broker started by hand over ours) is left alone.
  void RemoveIfOurs(pid_t pid);

  int directory_fd() const { return directory_; }
  ~PidFile();

 private:
  int directory_ = -1;
  std::string name_;
};

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_PID_FILE_H_
