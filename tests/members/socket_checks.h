/* Self-checks a member runs on its socket before declaring itself ready.
 * Under the shim these are the answers a program sees about a socket the
 * broker may have created for it, so they must match what the program asked
 * for exactly as they would on a kernel with native SO_REUSEPORT. */
#ifndef REUSEPORT_TESTS_MEMBERS_SOCKET_CHECKS_H
#define REUSEPORT_TESTS_MEMBERS_SOCKET_CHECKS_H

#include <sys/socket.h>

/* Checks that getsockname() returns the requested IP (and port, unless 0 was
 * requested), and that getsockopt() reports SO_ACCEPTCONN (1 for SOCK_STREAM,
 * which must already be listening; 0 otherwise), SO_TYPE == type, SO_DOMAIN ==
 * the requested family, SO_PROTOCOL == protocol, SO_ERROR == 0 and, if
 * check_reuseport, SO_REUSEPORT == 1. Exits with MEMBER_EXIT_SOCKET_CHECK and
 * a message naming the first mismatch. Returns the bound port. */
unsigned check_bound_socket(int fd, const struct sockaddr *requested, int type, int protocol,
                            int check_reuseport);

#endif
