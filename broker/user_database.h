// User and group names, from the files themselves: /etc/passwd and /etc/group.
//
// The release's broker is a static program, and glibc's getpwnam/getgrnam in
// a static program load the NSS modules of the glibc it was linked with at run
// time, which an old distribution does not have. The policy file's names are
// the local ones an administrator writes there; users that exist only in a
// directory service (LDAP, NIS) are given by number.
//
// Format (passwd(5), group(5)): one entry per line, fields separated by ':',
// the name first and the id third. Blank lines, '#' comments and the old NIS
// compat entries ('+' or '-' first) are skipped; a malformed line is skipped
// too, as getpwent(3) would. The first entry of a name wins.
//
// Thread-safety: stateless; each call reads the file anew.
#ifndef REUSEPORT_BROKER_USER_DATABASE_H_
#define REUSEPORT_BROKER_USER_DATABASE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace reuseport::broker {

inline constexpr char kPasswdFile[] = "/etc/passwd";
inline constexpr char kGroupFile[] = "/etc/group";

// The uid of user `name`: NotFound if no entry has that name, or an error
// naming the file if it cannot be read.
absl::StatusOr<uint32_t> FindUserId(absl::string_view name, const std::string& passwd_file = kPasswdFile);

// The gid of group `name`, likewise from /etc/group.
absl::StatusOr<uint32_t> FindGroupId(absl::string_view name, const std::string& group_file = kGroupFile);

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_USER_DATABASE_H_
