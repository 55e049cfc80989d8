// Talking to the broker: one connection ("link") per member socket, and
// request/reply calls on it with fds attached. Every wait is bounded, so a
// stopped or absent broker cannot hang the host program.
#ifndef REUSEPORT_SHIM_BROKER_LINK_H_
#define REUSEPORT_SHIM_BROKER_LINK_H_

#include <stdint.h>

#include "reuseport/protocol.h"

namespace reuseport::shim {

struct BrokerReply {
  struct rp_header header;
  union {
    struct rp_member_reply member;
    uint8_t raw[64];
  } payload;
  uint32_t payload_size;
  int fds[RP_MAX_FDS];
  int fd_count;
};

// Connects to the broker's control socket. Returns a close-on-exec fd, or -1
// with errno set (ENOENT/ECONNREFUSED: no broker; ETIMEDOUT: it did not accept).
int ConnectBroker();

// Sends a request and waits for its reply. Returns 0 when a reply arrived (its
// verdict is reply->header.status), or -1 with errno for a transport failure.
// The caller owns reply->fds and closes those it does not adopt.
int CallBroker(int link, uint16_t opcode, const void* payload, uint32_t payload_size, const int* fds,
               int fd_count, BrokerReply* reply);

void CloseReplyFds(BrokerReply* reply);

// Logs, once per process, that the broker is unreachable and what that means.
void WarnBrokerUnreachable(int err);

}  // namespace reuseport::shim

#endif  // REUSEPORT_SHIM_BROKER_LINK_H_
