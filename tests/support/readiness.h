#ifndef REUSEPORT_TESTS_SUPPORT_READINESS_H_
#define REUSEPORT_TESTS_SUPPORT_READINESS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "subprocess.h"
#include "temp_dir.h"

namespace reuseport::testing {

// Waits until `path` exists, watching its directory with inotify (no sleep
// loop; on a kernel without inotify, looking again after pauses up to 20 ms). Writers should create the file under another name and rename() it,
// as the members do with their ready files, so existence means complete.
//
// With `process`, returns early with FailedPrecondition (carrying the exit
// status and the tail of its stderr) if that process exits without having
// created the file. DeadlineExceeded after `timeout`; NotFound if the
// directory does not exist.
absl::Status WaitForFile(const std::string& path, absl::Duration timeout,
                         Subprocess* process = nullptr);

// The whole content of a file.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// The lines of a file without their '\n'; a last line without one is kept.
absl::StatusOr<std::vector<std::string>> ReadLines(const std::string& path);

}  // namespace reuseport::testing

#endif  // REUSEPORT_TESTS_SUPPORT_READINESS_H_
