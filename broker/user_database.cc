#include "user_database.h"

#include <errno.h>
#include <string.h>

#include <fstream>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace reuseport::broker {

namespace {

// The id (third field) of the first entry named `name` in a passwd- or
// group-format file.
absl::StatusOr<uint32_t> FindId(absl::string_view name, const std::string& file, const char* what) {
  if (name.empty()) return absl::NotFoundError(absl::StrFormat("no such %s ''", what));
  std::ifstream in(file);
  // Not NotFound even when the file is absent: that would read as "no such name".
  if (!in) return absl::UnavailableError(absl::StrFormat("cannot read %s: %s", file, strerror(errno)));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || line[0] == '+' || line[0] == '-') continue;
    std::vector<absl::string_view> fields = absl::StrSplit(line, ':');
    if (fields.size() < 3 || fields[0] != name) continue;
    uint32_t id = 0;
    if (!absl::SimpleAtoi(fields[2], &id)) continue;
    return id;
  }
  if (in.bad()) return absl::UnavailableError(absl::StrFormat("cannot read %s: %s", file, strerror(errno)));
  return absl::NotFoundError(absl::StrFormat("no such %s '%s' in %s", what, name, file));
}

}  // namespace

absl::StatusOr<uint32_t> FindUserId(absl::string_view name, const std::string& passwd_file) {
  return FindId(name, passwd_file, "user");
}

absl::StatusOr<uint32_t> FindGroupId(absl::string_view name, const std::string& group_file) {
  return FindId(name, group_file, "group");
}

}  // namespace reuseport::broker
