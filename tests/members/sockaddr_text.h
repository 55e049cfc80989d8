/* Numeric socket addresses to and from text, for the member programs. */
#ifndef REUSEPORT_TESTS_MEMBERS_SOCKADDR_TEXT_H
#define REUSEPORT_TESTS_MEMBERS_SOCKADDR_TEXT_H

#include <stddef.h>
#include <sys/socket.h>

/* Fills *addr and *len from a numeric host and a port. A host containing ':'
 * is an IPv6 literal (AF_INET6), anything else IPv4. Returns 0, or -1 if the
 * host is not a numeric address. */
int parse_host_port(const char *host, unsigned port, struct sockaddr_storage *addr,
                    socklen_t *len);

/* Writes the numeric address (no port, no brackets) of an AF_INET or AF_INET6
 * address into buf; "?" for other families. */
void format_ip(const struct sockaddr *addr, char *buf, size_t buf_len);

/* The port of an AF_INET or AF_INET6 address, host byte order; 0 otherwise. */
unsigned sockaddr_port(const struct sockaddr *addr);

/* 1 if both have the same family and IP address (ports are not compared). */
int same_ip(const struct sockaddr *a, const struct sockaddr *b);

#endif
