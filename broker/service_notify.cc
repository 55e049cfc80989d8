#include "service_notify.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "unique_fd.h"

namespace reuseport::broker {

void NotifyServiceManager(const std::string& message) {
  const char* notify = getenv("NOTIFY_SOCKET");
  if (notify == nullptr || (notify[0] != '/' && notify[0] != '@') || strlen(notify) >= sizeof(sockaddr_un::sun_path)) {
    return;
  }
  UniqueFd fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return;
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  strcpy(addr.sun_path, notify);
  socklen_t len = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + strlen(notify));
  if (notify[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
  sendto(fd.get(), message.data(), message.size(), MSG_NOSIGNAL, reinterpret_cast<struct sockaddr*>(&addr), len);
}

}  // namespace reuseport::broker
