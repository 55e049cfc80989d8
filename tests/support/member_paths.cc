#include "member_paths.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "host_features.h"

// Both come from tests/support/CMakeLists.txt.
#ifndef REUSEPORT_TEST_MEMBERS_DIR
#error "REUSEPORT_TEST_MEMBERS_DIR must be defined by the build"
#endif
#ifndef REUSEPORT_TEST_SOURCE_DIR
#error "REUSEPORT_TEST_SOURCE_DIR must be defined by the build"
#endif

namespace reuseport::testing {

std::string TcpMemberPath() { return absl::StrCat(REUSEPORT_TEST_MEMBERS_DIR, "/tcp_member"); }
std::string UdpMemberPath() { return absl::StrCat(REUSEPORT_TEST_MEMBERS_DIR, "/udp_member"); }
std::string SocketserverMemberPath() {
  return absl::StrCat(REUSEPORT_TEST_SOURCE_DIR, "/members/socketserver_member.py");
}
std::string PythonPath() {
  if (access("/usr/bin/python3", X_OK) == 0) return "/usr/bin/python3";
  std::string found = FindProgram("python3");
  return found.empty() ? "python3" : found;
}

}  // namespace reuseport::testing
