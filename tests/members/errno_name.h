/* The symbolic name of an errno value ("EADDRINUSE"), so that tests can match
 * on a stable word instead of a locale-dependent strerror() text. */
#ifndef REUSEPORT_TESTS_MEMBERS_ERRNO_NAME_H
#define REUSEPORT_TESTS_MEMBERS_ERRNO_NAME_H

/* Returns a static string; "E?" for values it does not know. */
const char *errno_name(int err);

#endif
