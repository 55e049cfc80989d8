/* Measures what a broker that does not answer costs the rest of a program.
 *
 * stalled_broker_probe --port P --id ID --ready-file F --log L --go-file G --report R
 *
 * Opens a listener with SO_REUSEPORT on 127.0.0.1:P (a member, once shared)
 * and a duplicate of it, writes the ready file, and waits for the go file (the
 * test stops the broker first). Then a second thread binds another socket to
 * the same port, which makes the shim ask the broker and wait for its answer.
 * While that thread waits (seen in /proc: it sleeps in poll), the main thread
 * closes the duplicate, forks, and sends the waiting thread a signal, timing
 * each; the report file gets one line:
 *   close_ms=N fork_ms=N signal_ms=N bind_ms=N bind_errno=NAME
 * Nothing here knows about reuseport: it is what any threaded server does.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "reuseport/errno_name.h"
#include "ready_file.h"

static unsigned g_port;
/* Written by the binding thread, read by the main one: atomics. */
static pid_t g_tid;
static int g_bind_errno = -1;
static long g_bind_ms = -1;
static int g_signalled = 0; /* set by the handler in the binding thread */

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void die(const char *what) {
  fprintf(stderr, "stalled_broker_probe: %s: %s\n", what, strerror(errno));
  exit(7);
}

static int shared_socket(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) die("socket");
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) die("setsockopt(SO_REUSEPORT)");
  return fd;
}

static struct sockaddr_in loopback(unsigned port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

static void on_signal(int sig) {
  (void)sig;
  __atomic_store_n(&g_signalled, 1, __ATOMIC_RELEASE);
}

static void *binder(void *arg) {
  (void)arg;
  __atomic_store_n(&g_tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
  int fd = shared_socket();
  struct sockaddr_in a = loopback(g_port);
  long start = now_ms();
  int r = bind(fd, (struct sockaddr *)&a, sizeof(a));
  __atomic_store_n(&g_bind_errno, r == 0 ? 0 : errno, __ATOMIC_RELEASE);
  __atomic_store_n(&g_bind_ms, now_ms() - start, __ATOMIC_RELEASE);
  close(fd);
  return NULL;
}

/* True once thread tid sleeps in poll/ppoll (the shim's wait for a reply). */
static int waiting_in_poll(pid_t tid) {
  char path[64], text[256];
  snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
  FILE *f = fopen(path, "re");
  if (f == NULL) return 0;
  long nr = -1;
  int ok = fgets(text, sizeof(text), f) != NULL && sscanf(text, "%ld", &nr) == 1;
  fclose(f);
#ifdef SYS_poll
  if (ok && nr == SYS_poll) return 1;
#endif
  return ok && nr == SYS_ppoll;
}

static void wait_for_file(const char *path) {
  for (int i = 0; i < 20000 && access(path, F_OK) != 0; ++i) usleep(1000);
  if (access(path, F_OK) != 0) die("waiting for the go file");
}

int main(int argc, char **argv) {
  const char *ready = NULL, *go = NULL, *report = NULL;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--port") == 0) g_port = (unsigned)atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--ready-file") == 0) ready = argv[i + 1];
    else if (strcmp(argv[i], "--go-file") == 0) go = argv[i + 1];
    else if (strcmp(argv[i], "--report") == 0) report = argv[i + 1];
  }
  if (ready == NULL || go == NULL || report == NULL) {
    fprintf(stderr, "usage: stalled_broker_probe --port P --ready-file F --go-file G --report R\n");
    return 1;
  }
  int listener = shared_socket();
  struct sockaddr_in a = loopback(g_port);
  if (bind(listener, (struct sockaddr *)&a, sizeof(a)) != 0) die("bind");
  if (listen(listener, 16) != 0) die("listen");
  socklen_t len = sizeof(a);
  if (getsockname(listener, (struct sockaddr *)&a, &len) != 0) die("getsockname");
  g_port = ntohs(a.sin_port);
  int duplicate = dup(listener);
  if (duplicate < 0) die("dup");
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigaction(SIGUSR1, &sa, NULL);
  write_ready_file(ready, g_port);
  wait_for_file(go);

  pthread_t thread;
  if (pthread_create(&thread, NULL, binder, NULL) != 0) die("pthread_create");
  int seen = 0;
  for (int i = 0; i < 10000 && !seen && __atomic_load_n(&g_bind_ms, __ATOMIC_ACQUIRE) < 0; ++i) {
    pid_t tid = __atomic_load_n(&g_tid, __ATOMIC_ACQUIRE);
    if (tid != 0) seen = waiting_in_poll(tid);
    if (!seen) usleep(1000);
  }
  if (!seen) {
    fprintf(stderr, "stalled_broker_probe: the binding thread never waited in poll (bind took %ld ms)\n",
            __atomic_load_n(&g_bind_ms, __ATOMIC_ACQUIRE));
    return 5;
  }
  long t = now_ms();
  if (close(duplicate) != 0) die("close");
  long close_ms = now_ms() - t;

  t = now_ms();
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) _exit(0);
  long fork_ms = now_ms() - t;
  waitpid(child, NULL, 0);

  t = now_ms();
  pthread_kill(thread, SIGUSR1);
  for (int i = 0; i < 10000 && !__atomic_load_n(&g_signalled, __ATOMIC_ACQUIRE); ++i) usleep(1000);
  long signal_ms = __atomic_load_n(&g_signalled, __ATOMIC_ACQUIRE) ? now_ms() - t : -1;

  pthread_join(thread, NULL);
  FILE *out = fopen(report, "we");
  if (out == NULL) die("open(report)");
  fprintf(out, "close_ms=%ld fork_ms=%ld signal_ms=%ld bind_ms=%ld bind_errno=%s\n", close_ms, fork_ms, signal_ms,
          g_bind_ms, g_bind_errno == 0 ? "0" : rp_errno_name(g_bind_errno));
  fclose(out);
  close(listener);
  return 0;
}
