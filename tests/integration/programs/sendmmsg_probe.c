/* Sends two datagrams to itself on loopback with one sendmmsg() and receives
 * them: "sendmmsg 2 received 2" and exit 0, else the failing call and exit 1.
 * shim_steps_aside_test runs it under the shim in a libc without sendmmsg. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in self = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(self);
  if (fd < 0 || bind(fd, (struct sockaddr *)&self, sizeof(self)) != 0 ||
      getsockname(fd, (struct sockaddr *)&self, &len) != 0) {
    printf("setup: %s\n", strerror(errno));
    return 1;
  }
  char a[] = "one", b[] = "two";
  struct iovec iov[2] = {{a, 3}, {b, 3}};
  struct mmsghdr msgs[2];
  memset(msgs, 0, sizeof(msgs));
  for (int i = 0; i < 2; ++i) {
    msgs[i].msg_hdr.msg_name = &self;
    msgs[i].msg_hdr.msg_namelen = sizeof(self);
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  int sent = sendmmsg(fd, msgs, 2, 0);
  if (sent < 0) {
    printf("sendmmsg: %s\n", strerror(errno));
    return 1;
  }
  int received = 0;
  char buf[16];
  while (received < sent && recv(fd, buf, sizeof(buf), 0) == 3) ++received;
  printf("sendmmsg %d received %d\n", sent, received);
  return sent == 2 && received == 2 ? 0 : 1;
}
