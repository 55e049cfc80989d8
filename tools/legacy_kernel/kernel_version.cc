#include "kernel_version.h"

#include <errno.h>
#include <sys/utsname.h>

#include <limits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace reuseport::legacy_kernel {

absl::StatusOr<KernelVersion> ParseKernelVersion(absl::string_view text) {
  const auto invalid = [text] {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid kernel version '", text, "': expected X.Y or X.Y.Z, e.g. 3.2"));
  };
  std::vector<absl::string_view> parts = absl::StrSplit(text, '.');
  if (parts.size() < 2 || parts.size() > 3) return invalid();

  uint16_t numbers[3] = {0, 0, 0};
  for (size_t i = 0; i < parts.size(); ++i) {
    // SimpleAtoi alone would accept "+3" and " 3"; a version is bare digits.
    if (parts[i].empty() || parts[i].size() > 5) return invalid();
    for (char c : parts[i]) {
      if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return invalid();
    }
    uint32_t value = 0;
    if (!absl::SimpleAtoi(parts[i], &value) || value > std::numeric_limits<uint16_t>::max()) {
      return invalid();
    }
    numbers[i] = static_cast<uint16_t>(value);
  }
  return KernelVersion{numbers[0], numbers[1], numbers[2], 0};
}

std::string FormatKernelVersion(const KernelVersion& version) {
  std::string text = absl::StrCat(version.major, ".", version.minor);
  if (version.patch != 0 || version.sublevel != 0) absl::StrAppend(&text, ".", version.patch);
  if (version.sublevel != 0) absl::StrAppend(&text, ".", version.sublevel);
  return text;
}

absl::StatusOr<KernelVersion> ParseKernelRelease(absl::string_view release) {
  const auto digit = [release](size_t i) {
    return i < release.size() && absl::ascii_isdigit(static_cast<unsigned char>(release[i]));
  };
  size_t end = 0;
  int dots = 0;
  while (digit(end) || (end < release.size() && release[end] == '.' && dots < 2 && digit(end + 1))) {
    if (release[end] == '.') ++dots;
    ++end;
  }
  return ParseKernelVersion(release.substr(0, end));
}

absl::StatusOr<KernelVersion> RunningKernelVersion() {
  struct utsname names;
  if (uname(&names) != 0) return absl::ErrnoToStatus(errno, "uname");
  return ParseKernelRelease(names.release);
}

}  // namespace reuseport::legacy_kernel
