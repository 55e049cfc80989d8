#include "temp_dir.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace reuseport::testing {

std::string TempDir::Base() {
  const char* tmpdir = getenv("TMPDIR");
  if (tmpdir == nullptr || tmpdir[0] != '/') return "/tmp";
  std::string base = tmpdir;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  return base;
}

absl::StatusOr<TempDir> TempDir::Create(std::string_view prefix, mode_t mode) {
  return CreateIn(Base(), prefix, mode);
}

absl::StatusOr<TempDir> TempDir::CreateIn(const std::string& base, std::string_view prefix, mode_t mode) {
  std::string name = absl::StrCat(base == "/" ? "" : base, "/", std::string(prefix), "-XXXXXX");
  std::vector<char> buf(name.begin(), name.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp ", name, ": ", std::strerror(errno)));
  }
  TempDir dir(buf.data());
  // chmod, not mkdtemp's mode, so the umask cannot narrow it.
  if (chmod(dir.path_.c_str(), mode) != 0) {
    return absl::InternalError(absl::StrCat("chmod ", dir.path_, ": ", std::strerror(errno)));
  }
  return dir;
}

TempDir::TempDir(TempDir&& other) noexcept : path_(std::move(other.path_)) {
  other.path_.clear();
}

TempDir& TempDir::operator=(TempDir&& other) noexcept {
  if (this != &other) {
    Remove();
    path_ = std::move(other.path_);
    other.path_.clear();
  }
  return *this;
}

TempDir::~TempDir() { Remove(); }

std::string TempDir::File(std::string_view name) const { return absl::StrCat(path_, "/", std::string(name)); }

void TempDir::Remove() {
  if (path_.empty()) return;
  const char* keep = getenv("REUSEPORT_TEST_KEEP_TEMP");
  if (keep != nullptr && keep[0] != '\0' && keep[0] != '0') {
    std::fprintf(stderr, "REUSEPORT_TEST_KEEP_TEMP: kept %s\n", path_.c_str());
  } else {
    std::error_code ignored;  // best effort: a leftover dir must not fail a test
    std::filesystem::remove_all(path_, ignored);
  }
  path_.clear();
}

}  // namespace reuseport::testing
