/* The readiness signal tests wait for: a file holding the bound port. */
#ifndef REUSEPORT_TESTS_MEMBERS_READY_FILE_H
#define REUSEPORT_TESTS_MEMBERS_READY_FILE_H

/* Writes "<port>\n" to "<path>.tmp" and renames it to path, so a watcher
 * never sees a partial file. Exits with MEMBER_EXIT_OTHER on failure. */
void write_ready_file(const char *path, unsigned port);

#endif
