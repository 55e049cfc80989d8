/* A TCP member that lives the lives real servers do: prefork workers,
 * hand-off across exec, vfork children, daemonizing, signals during fork,
 * threads accepting while others dup and close. Plain sockets API with
 * SO_REUSEPORT; it knows nothing of reuseport.
 *
 * lifecycle_member --scenario NAME --port P --id ID --ready-file F --log L
 *
 * Serves the members' line protocol: "HELLO <token>\n" -> "<id> <token>\n",
 * logging each token. Scenarios:
 *   prefork        bind+listen, then fork 3 workers that accept (ids ID.w0..)
 *   exec-handoff   bind+listen, then exec itself with --inherited-fd N; the new
 *                  image checks getsockname/getsockopt on the fd, then serves
 *   exec-bare-env  the same, but execve() with an empty environment (nginx's
 *                  binary upgrade passes only the variables its `env` lines name)
 *   exec-idle      the same as exec-handoff, but the new image touches the fd
 *                  only with poll() until a connection comes (its port comes
 *                  from the command line)
 *   exec-on-signal bind+listen, report ready, then on SIGUSR2 exec itself as
 *                  exec-handoff does (a master re-executing itself to reload,
 *                  at a moment the test chooses: while the broker is down)
 *   scm-handoff    bind+listen, then start a new image of itself (fork+exec,
 *                  the listener close-on-exec) and hand it the listener over
 *                  a Unix socket with SCM_RIGHTS, as haproxy -x does; the new
 *                  image checks getsockname/getsockopt on the fd it received,
 *                  serves, and the old one exits once it is ready
 *   prefork-reload bind+listen, daemonize (the process that bound exits once
 *                  the daemon is ready), fork 2 workers; the master keeps the
 *                  listener and never accepts (nginx's `daemon on` master, whose
 *                  shim never needed a thread of its own). SIGHUP: fork 2 new
 *                  workers, then end the old ones (a reload). After start and
 *                  after each reload it writes "<master> <w0> <w1>\n" to
 *                  <ready-file>.pids (renamed into place)
 *   vfork-close    vfork a child that closes every fd 3..1023 and exits; serve
 *   daemonize      fork; the parent exits; the child setsid()s, closes every
 *                  fd it does not know (3..1023 except its listener), serves
 *   signal-fork    a SIGALRM handler closes duplicates of the listener while
 *                  the main thread forks 200 children; then serve
 *   threads-churn  4 threads accept while another dups and closes the listener
 *   dup-close      dup the listener to a high fd, close the original, serve the dup
 *   churn          SIGTERM: finish the connection in hand, close the listener,
 *                  exit 0 (a graceful leave); SIGUSR1: finish it, then stop
 *                  itself (SIGSTOP) holding no connection, to be killed
 *   emfile         use up every fd, then keep calling accept() (which must fail
 *                  with EMFILE, as on the kernel), backing off 1 ms each time
 * The ready file is written once the process that serves is ready.
 * signal-fork needs RLIMIT_NOFILE >= 1100 and emfile at most 4096 (the test
 * sets them); with another limit they exit 8 and say what they found.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ready_file.h"
#include "request_log.h"

static const char *g_id = "life";
static const char *g_ready = NULL;
static const char *g_log_path = NULL;
static int g_log = -1;
static volatile sig_atomic_t g_stop = 0;

static void die(const char *what) {
  fprintf(stderr, "lifecycle_member: %s: %s\n", what, strerror(errno));
  exit(7);
}

static void on_term(int sig) {
  (void)sig;
  g_stop = 1;
}

static int open_listener(unsigned port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);  /* no SOCK_CLOEXEC: servers often omit it */
  if (fd < 0) die("socket");
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) die("setsockopt(SO_REUSEPORT)");
  struct sockaddr_in a;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0) die("bind");
  if (listen(fd, 128) != 0) die("listen");
  return fd;
}

static unsigned port_of(int fd) {
  struct sockaddr_in a;
  socklen_t len = sizeof(a);
  if (getsockname(fd, (struct sockaddr *)&a, &len) != 0) die("getsockname");
  if (a.sin_family != AF_INET) {
    fprintf(stderr, "lifecycle_member: getsockname gave family %d\n", a.sin_family);
    exit(6);
  }
  return ntohs(a.sin_port);
}

static void check_listener(int fd) {
  int v = 0;
  socklen_t len = sizeof(v);
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) != 0 || v != 1) {
    fprintf(stderr, "lifecycle_member: fd %d is not a listener\n", fd);
    exit(6);
  }
  len = sizeof(v);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) != 0 || v != SOCK_STREAM) {
    fprintf(stderr, "lifecycle_member: fd %d is not SOCK_STREAM\n", fd);
    exit(6);
  }
}

static void serve_one(int c, const char *id) {
  char buf[256];
  size_t got = 0;
  struct pollfd p = {c, POLLIN, 0};
  for (;;) {
    if (got >= sizeof(buf) - 1) break;
    int ready = poll(&p, 1, 5000);
    if (ready < 0 && errno == EINTR) continue;  /* a signal finishes this connection first */
    if (ready != 1) break;
    ssize_t n = read(c, buf + got, sizeof(buf) - 1 - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
    if (memchr(buf, '\n', got)) break;
  }
  buf[got] = '\0';
  char *nl = strchr(buf, '\n');
  if (nl == NULL || strncmp(buf, "HELLO ", 6) != 0) return;
  *nl = '\0';
  const char *token = buf + 6;
  char line[300];
  int n = snprintf(line, sizeof(line), "%s\n", token);
  append_request_log(g_log, line, (size_t)n);
  n = snprintf(line, sizeof(line), "%s %s\n", id, token);
  if (write(c, line, (size_t)n) != n) return;
}

static void serve(int listener, const char *id) {
  while (!g_stop) {
    int c = accept(listener, NULL, NULL);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN) continue;
      die("accept");
    }
    serve_one(c, id);
    close(c);
  }
}

static void ready(int listener) { write_ready_file(g_ready, port_of(listener)); }

static void install_term(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
}

/* ---- scenarios ---- */

static void prefork(int listener) {
  unsigned port = port_of(listener);
  pid_t workers[3];
  for (int i = 0; i < 3; ++i) {
    workers[i] = fork();
    if (workers[i] < 0) die("fork");
    if (workers[i] == 0) {
      char id[64];
      snprintf(id, sizeof(id), "%s.w%d", g_id, i);
      install_term();
      serve(listener, id);
      _exit(0);
    }
  }
  close(listener);  /* the master keeps nothing, like many prefork servers */
  write_ready_file(g_ready, port);
  while (!g_stop) pause();
  for (int i = 0; i < 3; ++i) kill(workers[i], SIGTERM);
  for (int i = 0; i < 3; ++i) waitpid(workers[i], NULL, 0);
}

static volatile sig_atomic_t g_reload = 0;

static void on_hup(int sig) {
  (void)sig;
  g_reload = 1;
}

/* Accepts only once poll() says a connection is there, as nginx's workers
 * (epoll) do: a worker the broker gives nothing never calls accept(). */
static void serve_polled(int listener, const char *id) {
  struct pollfd p = {listener, POLLIN, 0};
  while (!g_stop) {
    if (poll(&p, 1, -1) != 1) continue;
    int c = accept(listener, NULL, NULL);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN) continue;
      die("accept");
    }
    serve_one(c, id);
    close(c);
  }
}

static pid_t start_worker(int listener, int generation, int i) {
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    char id[64];
    snprintf(id, sizeof(id), "%s.g%dw%d", g_id, generation, i);
    install_term();
    serve_polled(listener, id);
    _exit(0);
  }
  return pid;
}

static void write_pids(pid_t w0, pid_t w1) {
  char path[4096], tmp[4200];
  snprintf(path, sizeof(path), "%s.pids", g_ready);
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  FILE *f = fopen(tmp, "we");
  if (f == NULL) die("fopen(pids)");
  fprintf(f, "%d %d %d\n", (int)getpid(), (int)w0, (int)w1);
  fclose(f);
  if (rename(tmp, path) != 0) die("rename(pids)");
}

static void prefork_reload(int listener) {
  int told[2];
  if (pipe(told) != 0) die("pipe");
  pid_t daemon = fork();
  if (daemon < 0) die("fork");
  if (daemon > 0) {
    char c;
    close(told[1]);
    _exit(read(told[0], &c, 1) == 1 ? 0 : 7);
  }
  close(told[0]);
  setsid();
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_hup;
  sigaction(SIGHUP, &sa, NULL);
  int generation = 0;
  pid_t w[2];
  for (int i = 0; i < 2; ++i) w[i] = start_worker(listener, generation, i);
  write_pids(w[0], w[1]);
  ready(listener);
  if (write(told[1], "r", 1) != 1) die("write");
  close(told[1]);
  while (!g_stop) {
    /* poll() rather than pause(): under TSan a handler runs only when an
       intercepted call returns, and pause() is not one. */
    poll(NULL, 0, 100);
    if (!g_reload) continue;
    g_reload = 0;
    ++generation;
    pid_t old[2] = {w[0], w[1]};
    for (int i = 0; i < 2; ++i) w[i] = start_worker(listener, generation, i);
    for (int i = 0; i < 2; ++i) kill(old[i], SIGTERM);
    for (int i = 0; i < 2; ++i) waitpid(old[i], NULL, 0);
    write_pids(w[0], w[1]);
  }
  for (int i = 0; i < 2; ++i) kill(w[i], SIGTERM);
  for (int i = 0; i < 2; ++i) waitpid(w[i], NULL, 0);
}

static void vfork_close(int listener) {
  pid_t child = vfork();
  if (child < 0) die("vfork");
  if (child == 0) {
    for (int fd = 3; fd < 1024; ++fd) close(fd);
    _exit(0);
  }
  int status = 0;
  waitpid(child, &status, 0);
  check_listener(listener);
  ready(listener);
  serve(listener, g_id);
}

static void daemonize(int listener) {
  int told[2];
  if (pipe(told) != 0) die("pipe");
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child > 0) {
    /* The parent goes once the daemon is serving (so a supervisor sees it ready). */
    char c;
    close(told[1]);
    if (read(told[0], &c, 1) != 1) _exit(7);
    _exit(0);
  }
  setsid();
  for (int fd = 3; fd < 1024; ++fd) {
    if (fd != listener && fd != g_log && fd != told[1]) close(fd);
  }
  check_listener(listener);
  ready(listener);
  if (write(told[1], "r", 1) != 1) die("write");
  close(told[1]);
  serve(listener, g_id);
}

static int g_dups[1000];
static volatile sig_atomic_t g_next_dup = 0;

static void close_a_dup(int sig) {
  (void)sig;
  int i = g_next_dup;
  if (i < 1000) {
    close(g_dups[i]);  /* close() of a member fd from a signal handler */
    g_next_dup = i + 1;
  }
}

/* The fd limit this program's scenarios need for their fds, or exit 8 with
 * what the limit is: the test sets it (SubprocessOptions::open_files_limit),
 * since hosts' defaults range from 1024 to 1M. */
static void need_open_files(rlim_t at_least) {
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) die("getrlimit");
  if (limit.rlim_cur < at_least) {
    fprintf(stderr, "lifecycle_member: needs RLIMIT_NOFILE >= %lu, has %lu\n", (unsigned long)at_least,
            (unsigned long)limit.rlim_cur);
    exit(8);
  }
}

static void signal_fork(int listener) {
  /* 1000 duplicates, the shim's fds and ours. */
  need_open_files(1100);
  for (int i = 0; i < 1000; ++i) {
    g_dups[i] = dup(listener);
    if (g_dups[i] < 0) die("dup");
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = close_a_dup;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval t = {{0, 200}, {0, 200}};
  setitimer(ITIMER_REAL, &t, NULL);
  for (int i = 0; i < 200; ++i) {
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) _exit(0);
    waitpid(child, NULL, 0);
  }
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  check_listener(listener);
  ready(listener);
  serve(listener, g_id);
}

static int g_churn_listener = -1;

static void *accept_thread(void *arg) {
  (void)arg;
  serve(g_churn_listener, g_id);
  return NULL;
}

static void *dup_close_thread(void *arg) {
  (void)arg;
  while (!g_stop) {
    int d = dup(g_churn_listener);
    if (d >= 0) close(d);
  }
  return NULL;
}

static void threads_churn(int listener) {
  g_churn_listener = listener;
  pthread_t t[5];
  for (int i = 0; i < 4; ++i) pthread_create(&t[i], NULL, accept_thread, NULL);
  pthread_create(&t[4], NULL, dup_close_thread, NULL);
  ready(listener);
  while (!g_stop) pause();
  shutdown(listener, SHUT_RDWR);
  _exit(0);
}

static void emfile(int listener) {
  int ready_port = (int)port_of(listener);
  write_ready_file(g_ready, (unsigned)ready_port);
  /* Bounded by the fd limit the test set: a host's 1M would take long and
   * could reach the system-wide limit (ENFILE) first. */
  need_open_files(16);
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) die("getrlimit");
  if (limit.rlim_cur > 4096) {
    fprintf(stderr, "lifecycle_member: emfile wants a small RLIMIT_NOFILE, has %lu\n", (unsigned long)limit.rlim_cur);
    exit(8);
  }
  while (open("/dev/null", O_RDONLY) >= 0) {
  }
  if (errno != EMFILE) die("open until the fd limit");
  long failures = 0;
  while (!g_stop) {
    int c = accept(listener, NULL, NULL);
    if (c >= 0) {
      serve_one(c, g_id);
      close(c);
      continue;
    }
    if (errno == EMFILE && failures++ == 0) {
      static const char kSaw[] = "lifecycle_member: accept: EMFILE\n";
      if (write(2, kSaw, sizeof(kSaw) - 1) < 0) break;
    }
    usleep(1000);
  }
}

static volatile sig_atomic_t g_freeze = 0;

static void on_freeze(int sig) {
  (void)sig;
  g_freeze = 1;
}

static void churn(int listener) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_freeze;  /* no SA_RESTART: accept() returns EINTR */
  sigaction(SIGUSR1, &sa, NULL);
  ready(listener);
  while (!g_stop) {
    if (g_freeze) raise(SIGSTOP);  /* idle: no connection in hand */
    int c = accept(listener, NULL, NULL);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN) continue;
      die("accept");
    }
    serve_one(c, g_id);
    close(c);
  }
  close(listener);  /* leave: the broker hands what was queued for us to the others */
}

static void dup_close(int listener) {
  int high = fcntl(listener, F_DUPFD, 500);
  if (high < 0) die("F_DUPFD");
  close(listener);
  check_listener(high);
  ready(high);
  serve(high, g_id);
}

static void scm_handoff(int listener, char **argv) {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0) die("socketpair");
  if (fcntl(listener, F_SETFD, FD_CLOEXEC) != 0) die("F_SETFD");
  fcntl(pair[0], F_SETFD, FD_CLOEXEC);
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    char fd_text[16];
    snprintf(fd_text, sizeof(fd_text), "%d", pair[1]);
    char *args[] = {argv[0], "--scenario", "scm-handoff", "--id", (char *)g_id, "--ready-file", (char *)g_ready,
                    "--log", (char *)g_log_path, "--receive-from", fd_text, NULL};
    execv("/proc/self/exe", args);
    die("execv");
  }
  close(pair[1]);
  char byte = 'L';
  struct iovec iov = {&byte, 1};
  char control[CMSG_SPACE(sizeof(int))];
  memset(control, 0, sizeof(control));
  struct msghdr msg;
  memset(&msg, 0, sizeof(msg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &listener, sizeof(int));
  if (sendmsg(pair[0], &msg, 0) != 1) die("sendmsg");
  /* The new image says when it serves; then the old one goes, as haproxy's does. */
  if (read(pair[0], &byte, 1) != 1) _exit(7);
  close(listener);
  _exit(0);
}

static int receive_listener(int from) {
  char byte;
  struct iovec iov = {&byte, 1};
  char control[CMSG_SPACE(sizeof(int))];
  struct msghdr msg;
  memset(&msg, 0, sizeof(msg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  if (recvmsg(from, &msg, 0) != 1) die("recvmsg");
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  if (c == NULL || c->cmsg_type != SCM_RIGHTS) {
    fprintf(stderr, "lifecycle_member: no fd received\n");
    exit(6);
  }
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof(int));
  return fd;
}

int main(int argc, char **argv) {
  const char *scenario = NULL;
  unsigned port = 0;
  int inherited = -1, receive_from = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--scenario") == 0) scenario = argv[i + 1];
    else if (strcmp(argv[i], "--port") == 0) port = (unsigned)atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--id") == 0) g_id = argv[i + 1];
    else if (strcmp(argv[i], "--ready-file") == 0) g_ready = argv[i + 1];
    else if (strcmp(argv[i], "--log") == 0) g_log_path = argv[i + 1];
    else if (strcmp(argv[i], "--inherited-fd") == 0) inherited = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--receive-from") == 0) receive_from = atoi(argv[i + 1]);
  }
  if (scenario == NULL || g_ready == NULL || g_log_path == NULL) {
    fprintf(stderr, "usage: lifecycle_member --scenario NAME --port P --id ID --ready-file F --log L\n");
    return 1;
  }
  install_term();
  g_log = open_request_log(g_log_path);
  if (inherited >= 0 && strcmp(scenario, "exec-idle") == 0) {
    write_ready_file(g_ready, port);
    serve_polled(inherited, g_id);
    return 0;
  }
  if (inherited >= 0) {
    /* The new image after exec: learn about the inherited fd as nginx does. */
    check_listener(inherited);
    port_of(inherited);
    ready(inherited);
    serve(inherited, g_id);
    return 0;
  }
  if (receive_from >= 0) {
    /* The new image of scm-handoff: match the received fd as haproxy does. */
    int fd = receive_listener(receive_from);
    check_listener(fd);
    ready(fd);
    if (write(receive_from, "r", 1) != 1) die("write");
    close(receive_from);
    serve(fd, g_id);
    return 0;
  }
  int listener = open_listener(port);
  if (strcmp(scenario, "prefork") == 0) {
    prefork(listener);
  } else if (strcmp(scenario, "exec-handoff") == 0 || strcmp(scenario, "exec-bare-env") == 0 ||
             strcmp(scenario, "exec-idle") == 0 || strcmp(scenario, "exec-on-signal") == 0) {
    char fd_text[16], port_text[16];
    snprintf(fd_text, sizeof(fd_text), "%d", listener);
    snprintf(port_text, sizeof(port_text), "%u", port_of(listener));
    char *args[] = {argv[0], "--scenario", (char *)scenario, "--port", port_text, "--id", (char *)g_id,
                    "--ready-file", (char *)g_ready, "--log", (char *)g_log_path, "--inherited-fd", fd_text, NULL};
    if (strcmp(scenario, "exec-on-signal") == 0) {
      sigset_t usr2, old_mask;
      sigemptyset(&usr2);
      sigaddset(&usr2, SIGUSR2);
      sigprocmask(SIG_BLOCK, &usr2, &old_mask);
      ready(listener);
      int sig = 0;
      sigwait(&usr2, &sig);
      sigprocmask(SIG_SETMASK, &old_mask, NULL);
    }
    if (strcmp(scenario, "exec-bare-env") == 0) {
      char *empty[] = {NULL};
      execve("/proc/self/exe", args, empty);
      die("execve");
    }
    execv("/proc/self/exe", args);
    die("execv");
  } else if (strcmp(scenario, "scm-handoff") == 0) {
    scm_handoff(listener, argv);
  } else if (strcmp(scenario, "prefork-reload") == 0) {
    prefork_reload(listener);
  } else if (strcmp(scenario, "vfork-close") == 0) {
    vfork_close(listener);
  } else if (strcmp(scenario, "daemonize") == 0) {
    daemonize(listener);
  } else if (strcmp(scenario, "signal-fork") == 0) {
    signal_fork(listener);
  } else if (strcmp(scenario, "threads-churn") == 0) {
    threads_churn(listener);
  } else if (strcmp(scenario, "dup-close") == 0) {
    dup_close(listener);
  } else if (strcmp(scenario, "emfile") == 0) {
    emfile(listener);
  } else if (strcmp(scenario, "churn") == 0) {
    churn(listener);
  } else {
    fprintf(stderr, "lifecycle_member: unknown scenario %s\n", scenario);
    return 1;
  }
  return 0;
}
