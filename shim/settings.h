// The shim's settings, copied from the environment once into static storage
// (REUSEPORT_MODE, REUSEPORT_SOCKET, REUSEPORT_PORTS, REUSEPORT_LOG): hooks never
// call getenv.
#ifndef REUSEPORT_SHIM_SETTINGS_H_
#define REUSEPORT_SHIM_SETTINGS_H_

#include <stdint.h>

namespace reuseport::shim {

enum class Mode : uint8_t {
  kAuto,     // use the kernel's SO_REUSEPORT when it works, emulate otherwise
  kEmulate,  // always emulate through the broker
  kOff,      // pass everything through untouched
};

enum PortProtocols : uint8_t { kPortTcp = 1, kPortUdp = 2 };

struct PortRule {
  uint16_t port;
  uint8_t protocols;  // PortProtocols bits
};

struct Settings {
  Mode mode;
  char socket_path[108];  // sizeof(sockaddr_un::sun_path)
  int port_count;
  PortRule ports[64];
};

const Settings& GetSettings();

// The shim cannot work in this process (real_calls.cc cannot find the C
// library's functions): from now on it behaves as REUSEPORT_MODE=off, so the
// program sees the running kernel, and it says so once on stderr. It never
// stops or aborts the program for its own reasons.
void StepAside();

// True when REUSEPORT_PORTS lists `port` for `protocol` (an rp_protocol value).
bool PortListed(const Settings& settings, uint16_t port, int protocol);

// REUSEPORT_LOG: quiet|error|warn|info|debug or 0-4; unset or empty is warn,
// anything else warn with a warning.
int ParseLogLevel(const char* value);

// REUSEPORT_PORTS, "8080,8443/tcp,53/udp" (a bare port means both
// protocols), appended to settings->ports; a bad entry is skipped with a
// warning, entries beyond 64 are dropped with one.
void ParsePorts(const char* value, Settings* settings);

}  // namespace reuseport::shim

#endif  // REUSEPORT_SHIM_SETTINGS_H_
