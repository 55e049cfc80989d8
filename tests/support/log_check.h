#ifndef REUSEPORT_TESTS_SUPPORT_LOG_CHECK_H_
#define REUSEPORT_TESTS_SUPPORT_LOG_CHECK_H_

#include <vector>

#include "absl/status/status.h"
#include "load_client.h"
#include "member_process.h"

namespace reuseport::testing {

// Cross-checks what the clients saw against the members' --log files, for a
// clean run (no failures expected). The error message lists the first few
// discrepancies.

// Every token of `result` was served exactly once: it appears once in all the
// logs together, in the log of the member that replied; and the logs hold
// nothing else.
absl::Status CheckTcpLogs(const TcpLoadResult& result, const std::vector<MemberProcess>& members);

// Every log line "<addr>:<port> <flow>-<seq>" comes from flow <flow>'s source
// port and its member is among that flow's responders, and the logs hold one
// line per reply the client got (replies + late_replies).
absl::Status CheckUdpLogs(const UdpFlowResult& result, const std::vector<MemberProcess>& members);

}  // namespace reuseport::testing

#endif  // REUSEPORT_TESTS_SUPPORT_LOG_CHECK_H_
