/* Preloaded before libreuseport.so by shim_steps_aside_test: makes the shim
 * meet C libraries it cannot use, without needing one.
 *
 *   REUSEPORT_TEST_HIDE=bind,sendmmsg    dlsym(RTLD_NEXT, name) finds nothing,
 *                                        as in a libc without the function
 *   REUSEPORT_TEST_FIND_SELF=socket      dlsym(RTLD_NEXT, name) returns the
 *                                        first definition in the process (the
 *                                        shim's own hook), as when the shim is
 *                                        loaded twice
 *
 * Every other RTLD_NEXT lookup is answered from libc.so.6, which is what the
 * shim's RTLD_NEXT would find; other handles go to the real dlsym. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

static void *(*real_dlsym)(void *, const char *);

static int listed(const char *variable, const char *name) {
  const char *list = getenv(variable);
  size_t n = strlen(name);
  while (list != NULL && *list != '\0') {
    const char *end = strchr(list, ',');
    size_t len = end ? (size_t)(end - list) : strlen(list);
    if (len == n && strncmp(list, name, n) == 0) return 1;
    list = end ? end + 1 : NULL;
  }
  return 0;
}

void *dlsym(void *handle, const char *name) {
  if (real_dlsym == NULL) {
    real_dlsym = (void *(*)(void *, const char *))dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34");
    if (real_dlsym == NULL) real_dlsym = (void *(*)(void *, const char *))dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.2.5");
  }
  if (handle != RTLD_NEXT) return real_dlsym(handle, name);
  if (listed("REUSEPORT_TEST_HIDE", name)) return NULL;
  if (listed("REUSEPORT_TEST_FIND_SELF", name)) return real_dlsym(RTLD_DEFAULT, name);
  void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
  return libc ? real_dlsym(libc, name) : NULL;
}
