#ifndef REUSEPORT_TESTS_SUPPORT_TEMP_DIR_H_
#define REUSEPORT_TESTS_SUPPORT_TEMP_DIR_H_

#include <sys/types.h>

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace reuseport::testing {

// A fresh directory under $TMPDIR (an absolute path; else /tmp), removed with
// everything in it when the owner goes away. Set REUSEPORT_TEST_KEEP_TEMP=1 to keep it for a post-mortem (its
// path is then printed to stderr).
//
// The default mode 0700 keeps other users out; pass 0777 when a member runs
// under another uid (SubprocessOptions::uid) and must write its ready file here.
//
// Thread-compatible: one owner; move-only.
class TempDir {
 public:
  static absl::StatusOr<TempDir> Create(std::string_view prefix = "reuseport-test",
                                        mode_t mode = 0700);
  // The same under `base` instead of $TMPDIR.
  static absl::StatusOr<TempDir> CreateIn(const std::string& base, std::string_view prefix, mode_t mode = 0700);

  // Where Create makes its directories: $TMPDIR if it is an absolute path, else /tmp.
  static std::string Base();

  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&& other) noexcept;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();

  const std::string& path() const { return path_; }
  // path() + "/" + name.
  std::string File(std::string_view name) const;

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  void Remove();

  std::string path_;  // empty once moved from
};

}  // namespace reuseport::testing

#endif  // REUSEPORT_TESTS_SUPPORT_TEMP_DIR_H_
