/* SIGTERM/SIGINT handling shared by the members: close the socket and exit 0.
 * Doing both inside the handler (close and _exit are async-signal-safe) stops
 * every loop style at once, including threads blocked in accept(), without
 * each loop having to poll a flag. */
#ifndef REUSEPORT_TESTS_MEMBERS_EXIT_ON_SIGNAL_H
#define REUSEPORT_TESTS_MEMBERS_EXIT_ON_SIGNAL_H

/* Installs the handlers for SIGTERM and SIGINT; socket_fd is closed first. */
void exit_on_signal(int socket_fd);

#endif
