/* Prints what uname(2) says the release is. Linked statically where the C
 * library allows it: the runner must answer uname for programs that no
 * LD_PRELOAD can enter. Raw system call, so no libc caching can interfere. */
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

int main(void) {
  struct utsname names;
  if (syscall(SYS_uname, &names) != 0) {
    perror("uname");
    return 1;
  }
  printf("%s\n", names.release);
  return 0;
}
