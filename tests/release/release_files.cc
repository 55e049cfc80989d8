#include "release_files.h"

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "subprocess.h"

namespace reuseport::testing {

namespace fs = std::filesystem;

absl::StatusOr<ReleasePaths> FindRelease() {
  ReleasePaths r;
  const char* env = getenv("REUSEPORT_TEST_DIST");
  r.dist = env != nullptr && *env != '\0' ? env : REUSEPORT_TEST_DEFAULT_DIST;
  r.version = REUSEPORT_TEST_VERSION;
  r.tarball = absl::StrCat(r.dist, "/reuseport-", r.version, "-linux-x86_64.tar.gz");
  r.deb = absl::StrCat(r.dist, "/reuseport_", r.version, "_amd64.deb");
  r.rpm = absl::StrCat(r.dist, "/reuseport-", r.version, "-1.x86_64.rpm");
  for (const std::string& f : {r.tarball, r.deb, r.rpm}) {
    if (access(f.c_str(), R_OK) != 0) {
      return absl::NotFoundError(absl::StrCat("no release: ", f,
                                              " is missing; scripts/package.sh makes it (scripts/test.sh runs it), "
                                              "or set REUSEPORT_TEST_DIST"));
    }
  }
  return r;
}

absl::StatusOr<int> RunToCompletion(const std::vector<std::string>& argv, std::string* output,
                                    const std::vector<std::pair<std::string, std::string>>& env,
                                    absl::Duration timeout) {
  absl::StatusOr<TempDir> dir = TempDir::Create("reuseport-run");
  if (!dir.ok()) return dir.status();
  SubprocessOptions options;
  options.argv = argv;
  options.env = env;
  options.unset_env = {"LD_PRELOAD", "REUSEPORT_SOCKET", "REUSEPORT_MODE", "REUSEPORT_PORTS", "NOTIFY_SOCKET"};
  options.stdout_path = dir->File("output");
  options.stderr_path = dir->File("output");
  absl::StatusOr<Subprocess> p = Subprocess::Start(options);
  if (!p.ok()) return p.status();
  absl::StatusOr<int> status = p->Wait(timeout);
  if (output != nullptr) *output = p->ReadStdout();
  return status;
}

bool ExitedWith(int wait_status, int code) { return WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == code; }

absl::StatusOr<UnpackedRelease> UnpackedRelease::Unpack(const ReleasePaths& release) {
  absl::StatusOr<TempDir> dir = TempDir::Create("reuseport-release", 0755);
  if (!dir.ok()) return dir.status();
  std::string out;
  absl::StatusOr<int> s = RunToCompletion({"tar", "-xzf", release.tarball, "-C", dir->path()}, &out);
  if (!s.ok()) return s.status();
  if (!ExitedWith(*s, 0)) return absl::InternalError(absl::StrCat("tar -xzf ", release.tarball, ": ", out));
  std::string prefix = absl::StrCat(dir->path(), "/reuseport-", release.version, "-linux-x86_64");
  if (!fs::is_directory(prefix)) return absl::InternalError(absl::StrCat(release.tarball, " has no ", prefix));
  return UnpackedRelease(std::move(*dir), prefix);
}

absl::Status ExtractDeb(const std::string& deb, const std::string& dir) {
  std::string out;
  absl::StatusOr<int> s = RunToCompletion({"dpkg-deb", "-x", deb, dir}, &out);
  if (!s.ok()) return s.status();
  if (!ExitedWith(*s, 0)) return absl::InternalError(absl::StrCat("dpkg-deb -x ", deb, ": ", out));
  return absl::OkStatus();
}

absl::Status ExtractRpm(const std::string& rpm, const std::string& dir) {
  std::string out;
  absl::StatusOr<int> s = RunToCompletion(
      {"/bin/sh", "-c", "cd \"$2\" && rpm2cpio \"$1\" | cpio -idm --quiet", "sh", rpm, dir}, &out);
  if (!s.ok()) return s.status();
  if (!ExitedWith(*s, 0)) return absl::InternalError(absl::StrCat("rpm2cpio ", rpm, " | cpio: ", out));
  return absl::OkStatus();
}

std::vector<std::string> RegularFiles(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file() && !entry.is_symlink()) files.push_back(fs::relative(entry.path(), dir).string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace reuseport::testing
