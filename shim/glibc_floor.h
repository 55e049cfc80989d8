// The oldest C library the shim loads into: glibc 2.12 (RHEL 6; Debian 7 has
// eglibc 2.13, Ubuntu 12.04 glibc 2.15). Force-included into every file of the
// shim (shim/CMakeLists.txt), so no code has to remember it; not in TSan
// builds, whose shim depends on libtsan and is never shipped.
//
// A library built against a newer glibc binds each function to the newest
// version of its symbol, and the loader of an older glibc refuses to start a
// program that preloads it ("version 'GLIBC_2.34' not found"). So:
//
// - Functions whose newest version is younger than 2.12 are bound here to
//   their GLIBC_2.2.5 version, which every x86-64 glibc still exports. Until
//   2.34 dlsym and dlerror lived in libdl.so.2 and the pthread functions in
//   libpthread.so.0; the shim names both as dependencies (they are stubs from
//   2.34 on), and the loader finds each symbol wherever it is. memcpy@2.2.5 is
//   the old one that tolerates overlap: slower by nothing that matters here.
// - fstat (a symbol only since 2.33; an inline wrapper of __fxstat before) and
//   clock_gettime (in librt.so.1 before 2.17) are the system calls themselves:
//   glibc_floor.cc defines them inside the shim, hidden, so the shim's own
//   calls bind there and nothing is exported.
// - Functions old glibc lacks entirely (sendmmsg, 2.14) are resolved at run
//   time as optional, with a system call standing in (real_calls.cc).
//
// tests/release/elf_floor_test.cc reads the version requirements of the built
// library and fails on anything newer than GLIBC_2.12.
#ifndef REUSEPORT_SHIM_GLIBC_FLOOR_H_
#define REUSEPORT_SHIM_GLIBC_FLOOR_H_

__asm__(".symver memcpy, memcpy@GLIBC_2.2.5");
__asm__(".symver dlsym, dlsym@GLIBC_2.2.5");
__asm__(".symver dlerror, dlerror@GLIBC_2.2.5");
__asm__(".symver dladdr, dladdr@GLIBC_2.2.5");
__asm__(".symver pthread_create, pthread_create@GLIBC_2.2.5");
__asm__(".symver pthread_once, pthread_once@GLIBC_2.2.5");
__asm__(".symver pthread_attr_setstacksize, pthread_attr_setstacksize@GLIBC_2.2.5");
__asm__(".symver pthread_sigmask, pthread_sigmask@GLIBC_2.2.5");

#endif  // REUSEPORT_SHIM_GLIBC_FLOOR_H_
