/* Conversions between struct sockaddr and struct rp_address, shared by the shim
 * and the broker (header-only, C-compatible, no allocation). */
#ifndef REUSEPORT_ADDRESS_CODEC_H
#define REUSEPORT_ADDRESS_CODEC_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "reuseport/protocol.h"

/* Fills *out from an AF_INET/AF_INET6 sockaddr. Returns 0, or -1 if the family
 * is neither or len is too short for it. */
static inline int rp_address_from_sockaddr(const struct sockaddr* sa, socklen_t len, struct rp_address* out) {
  memset(out, 0, sizeof(*out));
  if (sa == NULL || len < (socklen_t)sizeof(sa_family_t)) return -1;
  if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
    const struct sockaddr_in* in = (const struct sockaddr_in*)sa;
    out->family = AF_INET;
    out->port = ntohs(in->sin_port);
    memcpy(out->addr, &in->sin_addr, 4);
    return 0;
  }
  if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
    const struct sockaddr_in6* in6 = (const struct sockaddr_in6*)sa;
    out->family = AF_INET6;
    out->port = ntohs(in6->sin6_port);
    out->flowinfo = in6->sin6_flowinfo;
    out->scope_id = in6->sin6_scope_id;
    memcpy(out->addr, &in6->sin6_addr, 16);
    return 0;
  }
  return -1;
}

static inline int rp_address_is_v4_mapped(const struct rp_address* a) {
  static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return a->family == AF_INET6 && memcmp(a->addr, prefix, 12) == 0;
}

/* Writes `a` as a sockaddr of `family` (AF_INET or AF_INET6), mapping IPv4 into
 * ::ffff:a.b.c.d and back as needed. Returns the sockaddr length, or 0 when the
 * address cannot be expressed in that family (a real IPv6 address as AF_INET). */
static inline socklen_t rp_address_to_sockaddr(const struct rp_address* a, int family, struct sockaddr_storage* out) {
  memset(out, 0, sizeof(*out));
  if (family == AF_INET) {
    struct sockaddr_in* in = (struct sockaddr_in*)out;
    if (a->family == AF_INET) {
      memcpy(&in->sin_addr, a->addr, 4);
    } else if (rp_address_is_v4_mapped(a)) {
      memcpy(&in->sin_addr, a->addr + 12, 4);
    } else {
      return 0;
    }
    in->sin_family = AF_INET;
    in->sin_port = htons(a->port);
    return (socklen_t)sizeof(*in);
  }
  if (family == AF_INET6) {
    struct sockaddr_in6* in6 = (struct sockaddr_in6*)out;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(a->port);
    if (a->family == AF_INET) {
      in6->sin6_addr.s6_addr[10] = 0xff;
      in6->sin6_addr.s6_addr[11] = 0xff;
      memcpy(&in6->sin6_addr.s6_addr[12], a->addr, 4);
    } else {
      in6->sin6_flowinfo = a->flowinfo;
      in6->sin6_scope_id = a->scope_id;
      memcpy(&in6->sin6_addr, a->addr, 16);
    }
    return (socklen_t)sizeof(*in6);
  }
  return 0;
}

/* Copies a socket address out the way the kernel does for accept(), recvfrom()
 * and getsockname(): at most *len bytes, and *len set to the full size. */
static inline void rp_copy_sockaddr_out(const struct sockaddr_storage* src, socklen_t src_len, struct sockaddr* dst,
                                        socklen_t* len) {
  if (dst == NULL || len == NULL) return;
  socklen_t n = *len < src_len ? *len : src_len;
  memcpy(dst, src, n);
  *len = src_len;
}

#endif /* REUSEPORT_ADDRESS_CODEC_H */
