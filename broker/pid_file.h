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

// Writes "<pid>\n" to `path` (mode 0644: init scripts and `ps` users read it).
absl::Status WritePidFile(const std::string& path, pid_t pid);

// Removes `path` if it still names `pid`; a file naming another process (a
// successor, or a broker started by hand over ours) is left alone.
void RemovePidFileIfOurs(const std::string& path, pid_t pid);

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_PID_FILE_H_
