/* Link-time stand-in for glibc 2.12's libdl.so.2: the shim is linked against
 * it so that its version requirements say "dlsym@GLIBC_2.2.5 from libdl.so.2",
 * which is where loaders before glibc 2.30 look (see ../glibc_floor.h). Never
 * loaded: at run time the system's libdl.so.2 (or, from glibc 2.34 on,
 * libc.so.6) provides these. No header, so the signatures need not match. */
void* dlsym(void) { return 0; }
char* dlerror(void) { return 0; }
int dladdr(void) { return 0; }
