// Asks a broker for its status over the control socket (RP_OP_STATUS) and
// reassembles the chunked reply.
#ifndef REUSEPORT_TOOLS_CTL_STATUS_CLIENT_H_
#define REUSEPORT_TOOLS_CTL_STATUS_CLIENT_H_

#include <string>

#include "absl/status/statusor.h"
#include "reuseport/protocol.h"

namespace reuseport::ctl {

absl::StatusOr<std::string> FetchStatus(const std::string& socket_path, rp_status_format format, int timeout_ms = 5000);

}  // namespace reuseport::ctl

#endif  // REUSEPORT_TOOLS_CTL_STATUS_CLIENT_H_
