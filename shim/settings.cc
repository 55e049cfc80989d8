#include "settings.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "raw_log.h"
#include "reuseport/protocol.h"

namespace reuseport::shim {

namespace {

Settings g_settings;
pthread_once_t g_settings_once = PTHREAD_ONCE_INIT;

void LoadSettings() {
  Settings& s = g_settings;
  __atomic_store_n(&g_log_level, ParseLogLevel(getenv("REUSEPORT_LOG")), __ATOMIC_RELAXED);

  s.mode = Mode::kAuto;
  const char* mode = getenv("REUSEPORT_MODE");
  if (mode != nullptr && *mode != '\0') {
    if (strcmp(mode, "auto") == 0) {
      s.mode = Mode::kAuto;
    } else if (strcmp(mode, "emulate") == 0) {
      s.mode = Mode::kEmulate;
    } else if (strcmp(mode, "off") == 0) {
      s.mode = Mode::kOff;
    } else {
      RawLog(kLogWarn).Str("REUSEPORT_MODE='").Str(mode).Str("' is not auto|emulate|off; using auto").Emit();
    }
  }

  const char* path = getenv("REUSEPORT_SOCKET");
  if (path == nullptr || *path == '\0') path = rp_default_socket();
  if (strlen(path) >= sizeof(s.socket_path)) {
    RawLog(kLogWarn).Str("REUSEPORT_SOCKET is longer than a Unix socket path can be; using ").Str(rp_default_socket()).Emit();
    path = rp_default_socket();
  }
  strcpy(s.socket_path, path);

  ParsePorts(getenv("REUSEPORT_PORTS"), &s);
}

// Runs before main in the normal case; GetSettings() covers hooks called earlier.
__attribute__((constructor)) void LoadSettingsAtStart() { pthread_once(&g_settings_once, LoadSettings); }

}  // namespace

int ParseLogLevel(const char* value) {
  if (value == nullptr || *value == '\0') return kLogWarn;
  if (strcmp(value, "quiet") == 0 || strcmp(value, "0") == 0) return kLogQuiet;
  if (strcmp(value, "error") == 0 || strcmp(value, "1") == 0) return kLogError;
  if (strcmp(value, "warn") == 0 || strcmp(value, "2") == 0) return kLogWarn;
  if (strcmp(value, "info") == 0 || strcmp(value, "3") == 0) return kLogInfo;
  if (strcmp(value, "debug") == 0 || strcmp(value, "4") == 0) return kLogDebug;
  RawLog(kLogWarn).Str("REUSEPORT_LOG='").Str(value).Str("' is not quiet|error|warn|info|debug; using warn").Emit();
  return kLogWarn;
}

// "8080,8443/tcp,53/udp": a bare port means both protocols.
void ParsePorts(const char* value, Settings* settings) {
  const char* p = value;
  while (p != nullptr && *p != '\0') {
    const char* end = strchr(p, ',');
    size_t len = end ? static_cast<size_t>(end - p) : strlen(p);
    char item[32];
    if (len == 0 || len >= sizeof(item)) {
      if (len != 0) RawLog(kLogWarn).Str("REUSEPORT_PORTS: entry too long, ignored").Emit();
    } else {
      memcpy(item, p, len);
      item[len] = '\0';
      char* slash = strchr(item, '/');
      uint8_t protocols = kPortTcp | kPortUdp;
      if (slash != nullptr) {
        *slash = '\0';
        if (strcmp(slash + 1, "tcp") == 0) {
          protocols = kPortTcp;
        } else if (strcmp(slash + 1, "udp") == 0) {
          protocols = kPortUdp;
        } else {
          protocols = 0;
        }
      }
      char* digits_end = nullptr;
      long port = strtol(item, &digits_end, 10);
      if (protocols == 0 || digits_end == item || *digits_end != '\0' || port < 1 || port > 65535) {
        RawLog(kLogWarn).Str("REUSEPORT_PORTS: '").Str(item).Str("' is not PORT, PORT/tcp or PORT/udp; ignored").Emit();
      } else if (settings->port_count == static_cast<int>(sizeof(settings->ports) / sizeof(settings->ports[0]))) {
        RawLog(kLogWarn).Str("REUSEPORT_PORTS: more than 64 entries; the rest are ignored").Emit();
        return;
      } else {
        settings->ports[settings->port_count++] = PortRule{static_cast<uint16_t>(port), protocols};
      }
    }
    p = end ? end + 1 : nullptr;
  }
}

const Settings& GetSettings() {
  pthread_once(&g_settings_once, LoadSettings);
  return g_settings;
}

void StepAside() {
  pthread_once(&g_settings_once, LoadSettings);
  g_settings.mode = Mode::kOff;
  static int told;
  if (FirstTime(&told)) {
    RawLog(kLogError).Str("stepping aside: this program runs without reuseport and sees the running kernel").Emit();
  }
}

bool PortListed(const Settings& settings, uint16_t port, int protocol) {
  uint8_t want = protocol == RP_PROTO_UDP ? kPortUdp : kPortTcp;
  for (int i = 0; i < settings.port_count; ++i) {
    if (settings.ports[i].port == port && (settings.ports[i].protocols & want)) return true;
  }
  return false;
}

}  // namespace reuseport::shim
