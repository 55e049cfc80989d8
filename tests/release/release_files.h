// The release scripts/package.sh made, for the tests that check it: found in
// $REUSEPORT_TEST_DIST, else the dist/ directory of this source tree
// (configured at build time), and unpacked into a temporary directory.
//
// scripts/test.sh runs scripts/package.sh before ctest, so in CI the release
// is always there; a developer who runs ctest alone gets the tests skipped
// with the reason (FindRelease returns NotFound).
#ifndef REUSEPORT_TESTS_RELEASE_RELEASE_FILES_H_
#define REUSEPORT_TESTS_RELEASE_RELEASE_FILES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "temp_dir.h"

namespace reuseport::testing {

struct ReleasePaths {
  std::string dist;     // the directory
  std::string version;  // "0.1.0"
  std::string tarball;  // dist/reuseport-VERSION-linux-x86_64.tar.gz
  std::string deb;      // dist/reuseport_VERSION_amd64.deb
  std::string rpm;      // dist/reuseport-VERSION-1.x86_64.rpm
};

// NotFound (with what to do) when a file is missing.
absl::StatusOr<ReleasePaths> FindRelease();

// The tarball unpacked: prefix() is its top directory, laid out as an install
// prefix (sbin/reuseportd, bin/..., lib/libreuseport.so, etc/...).
class UnpackedRelease {
 public:
  static absl::StatusOr<UnpackedRelease> Unpack(const ReleasePaths& release);

  const std::string& prefix() const { return prefix_; }
  std::string Path(const std::string& relative) const { return prefix_ + "/" + relative; }
  std::string Broker() const { return Path("sbin/reuseportd"); }
  std::string Run() const { return Path("bin/reuseport-run"); }
  std::string Ctl() const { return Path("bin/reuseportctl"); }
  std::string LegacyKernel() const { return Path("bin/reuseport-legacy-kernel"); }
  std::string Shim() const { return Path("lib/libreuseport.so"); }
  std::string SysvScript() const { return Path("etc/init.d/reuseportd"); }
  std::string Policy() const { return Path("etc/reuseport/policy.conf"); }

 private:
  UnpackedRelease(TempDir dir, std::string prefix) : dir_(std::move(dir)), prefix_(std::move(prefix)) {}
  TempDir dir_;
  std::string prefix_;
};

// The contents of a .deb (dpkg-deb -x) or an .rpm (rpm2cpio | cpio) in dir.
absl::Status ExtractDeb(const std::string& deb, const std::string& dir);
absl::Status ExtractRpm(const std::string& rpm, const std::string& dir);

// Every regular file under dir, as paths relative to it, sorted.
std::vector<std::string> RegularFiles(const std::string& dir);

// Runs argv (no shell) to completion; the output of both streams in *output.
// Returns the raw wait status.
absl::StatusOr<int> RunToCompletion(const std::vector<std::string>& argv, std::string* output,
                                    const std::vector<std::pair<std::string, std::string>>& env = {},
                                    absl::Duration timeout = absl::Seconds(120));

// "exited with status N" as a predicate.
bool ExitedWith(int wait_status, int code);

}  // namespace reuseport::testing

#endif  // REUSEPORT_TESTS_RELEASE_RELEASE_FILES_H_
