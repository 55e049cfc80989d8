#include "exit_on_signal.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "member_exit.h"

static volatile sig_atomic_t socket_to_close = -1;

static void close_and_exit(int signo) {
  (void)signo;
  if (socket_to_close >= 0) close(socket_to_close);
  _exit(MEMBER_EXIT_OK);
}

void exit_on_signal(int socket_fd) {
  socket_to_close = socket_fd;
  struct sigaction action;
  memset(&action, 0, sizeof(action));
  action.sa_handler = close_and_exit;
  sigemptyset(&action.sa_mask);
  if (sigaction(SIGTERM, &action, NULL) != 0 || sigaction(SIGINT, &action, NULL) != 0) {
    die_errno("sigaction", errno, MEMBER_EXIT_OTHER);
  }
}
