/* The per-member record of served requests that tests compare with what the
 * clients saw. Each line is one write(2) on an O_APPEND fd, so lines from
 * several threads never interleave, and a line is on disk before the reply is
 * sent: once a client has its reply, the log already shows it. */
#ifndef REUSEPORT_TESTS_MEMBERS_REQUEST_LOG_H
#define REUSEPORT_TESTS_MEMBERS_REQUEST_LOG_H

#include <stddef.h>

/* Opens path for appending; returns -1 when path is NULL (no log wanted).
 * Exits with MEMBER_EXIT_OTHER if it cannot be opened. */
int open_request_log(const char *path);

/* Appends one line (text without the newline) with a single write(2); does
 * nothing for fd -1. Exits with MEMBER_EXIT_OTHER on a failed or short write. */
void append_request_log(int fd, const char *text, size_t text_len);

#endif
