// Renders what the broker knows for an operator: groups (protocol, address,
// owner uid, namespace), members (pid, uid, command) and how load is spread,
// as text, JSON, or the Prometheus text exposition format.
#ifndef REUSEPORT_BROKER_STATUS_REPORT_H_
#define REUSEPORT_BROKER_STATUS_REPORT_H_

#include <cstddef>
#include <string>

#include "dispatcher.h"
#include "registry.h"
#include "reuseport/protocol.h"

namespace reuseport::broker {

struct ControlTotals;

struct StatusSources {
  const Registry& registry;
  const DispatchTotals& dispatch;
  const ControlTotals& control;
  size_t links;
};

std::string RenderStatus(const StatusSources& sources, rp_status_format format);

// Exposed for tests.
std::string JsonEscape(const std::string& s);
std::string PrometheusLabelEscape(const std::string& s);

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_STATUS_REPORT_H_
