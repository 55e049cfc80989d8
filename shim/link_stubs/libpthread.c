/* Link-time stand-in for glibc 2.12's libpthread.so.0, for the functions the
 * shim uses that old glibc keeps only there (see libdl.c and ../glibc_floor.h).
 * Never loaded. */
int pthread_create(void) { return 0; }
int pthread_once(void) { return 0; }
int pthread_attr_setstacksize(void) { return 0; }
int pthread_sigmask(void) { return 0; }
