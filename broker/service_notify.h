// systemd's readiness protocol (sd_notify(3)) without libsystemd: one datagram
// to the socket named by $NOTIFY_SOCKET. A no-op when not run by systemd.
#ifndef REUSEPORT_BROKER_SERVICE_NOTIFY_H_
#define REUSEPORT_BROKER_SERVICE_NOTIFY_H_

#include <string>

namespace reuseport::broker {

// Sends `message` ("READY=1\nMAINPID=...", "MAINPID=...") if $NOTIFY_SOCKET is set.
void NotifyServiceManager(const std::string& message);

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_SERVICE_NOTIFY_H_
