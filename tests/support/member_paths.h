#ifndef REUSEPORT_TESTS_SUPPORT_MEMBER_PATHS_H_
#define REUSEPORT_TESTS_SUPPORT_MEMBER_PATHS_H_

#include <string>

namespace reuseport::testing {

// Absolute paths of the member programs (tests/members/), fixed at build time.
std::string TcpMemberPath();
std::string UdpMemberPath();
// Run it as {PythonPath(), SocketserverMemberPath(), ...}.
std::string SocketserverMemberPath();
// The system interpreter (/usr/bin/python3) rather than whatever python3 is
// first in PATH; where there is none, the one in PATH; else "python3", for
// REUSEPORT_REQUIRE_PROGRAM to name (host_features.h).
std::string PythonPath();

}  // namespace reuseport::testing

#endif  // REUSEPORT_TESTS_SUPPORT_MEMBER_PATHS_H_
