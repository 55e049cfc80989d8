#include "sockaddr_text.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

int parse_host_port(const char *host, unsigned port, struct sockaddr_storage *addr,
                    socklen_t *len) {
  memset(addr, 0, sizeof(*addr));
  if (strchr(host, ':') != NULL) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)addr;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((unsigned short)port);
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1) return -1;
    *len = sizeof(*in6);
  } else {
    struct sockaddr_in *in4 = (struct sockaddr_in *)addr;
    in4->sin_family = AF_INET;
    in4->sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &in4->sin_addr) != 1) return -1;
    *len = sizeof(*in4);
  }
  return 0;
}

void format_ip(const struct sockaddr *addr, char *buf, size_t buf_len) {
  const void *ip = NULL;
  if (addr->sa_family == AF_INET) {
    ip = &((const struct sockaddr_in *)addr)->sin_addr;
  } else if (addr->sa_family == AF_INET6) {
    ip = &((const struct sockaddr_in6 *)addr)->sin6_addr;
  }
  if (ip == NULL || inet_ntop(addr->sa_family, ip, buf, (socklen_t)buf_len) == NULL) {
    snprintf(buf, buf_len, "?");
  }
}

unsigned sockaddr_port(const struct sockaddr *addr) {
  if (addr->sa_family == AF_INET) return ntohs(((const struct sockaddr_in *)addr)->sin_port);
  if (addr->sa_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)addr)->sin6_port);
  return 0;
}

int same_ip(const struct sockaddr *a, const struct sockaddr *b) {
  if (a->sa_family != b->sa_family) return 0;
  if (a->sa_family == AF_INET) {
    return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
           ((const struct sockaddr_in *)b)->sin_addr.s_addr;
  }
  if (a->sa_family == AF_INET6) {
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
  }
  return 0;
}
