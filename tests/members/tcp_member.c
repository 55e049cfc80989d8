/* tcp_member: an ordinary TCP server that joins a port with SO_REUSEPORT.
 *
 * It knows nothing about the reuseport shim: it uses the plain sockets API the
 * way real servers do (several accept-loop styles, accept vs accept4, options
 * set on the listener), so that it behaves the same on a kernel with native
 * SO_REUSEPORT and under the shim. Tests use its replies and --log file to see
 * which member served each connection.
 *
 * Protocol: the client sends "HELLO <token>\n"; the member appends "<token>\n"
 * to --log, replies "<id> <token>[ inherit-ok|inherit-BAD ...]\n" and closes.
 * Clients that send nothing (5 s) or something else get no reply.
 *
 * Exit statuses are in member_exit.h. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "exit_on_signal.h"
#include "member_exit.h"
#include "number_arg.h"
#include "ready_file.h"
#include "request_log.h"
#include "sockaddr_text.h"
#include "socket_checks.h"

enum loop_style { LOOP_BLOCKING, LOOP_POLL, LOOP_SELECT, LOOP_EPOLL_LT, LOOP_EPOLL_ET, LOOP_EPOLL_ONESHOT };

struct keepalive_settings {
  int enabled;
  int idle, interval, count;
};

struct tcp_member_options {
  const char *host;
  unsigned port;
  char id[256];
  enum loop_style loop;
  int use_accept4;
  int nonblock_via_ioctl;
  unsigned threads;
  int reuseport;
  int reuseaddr;
  int v6only; /* -1: leave the system default */
  int backlog;
  int nodelay;
  struct keepalive_settings keepalive;
  const char *ready_file;
  const char *log_path;
  unsigned long exit_after; /* 0: never */
  int linger_close;
};

static struct tcp_member_options options;
static int listen_fd = -1;
static int log_fd = -1;
static atomic_ulong requests_served;

enum { REQUEST_TIMEOUT_MS = 5000, MAX_REQUEST = 512 };

static void usage_error(const char *message) {
  die(MEMBER_EXIT_USAGE,
      "%s\nusage: tcp_member [--host ADDR] [--port N] [--id NAME]"
      " [--loop blocking|poll|select|epoll-lt|epoll-et|epoll-oneshot]"
      " [--accept accept|accept4] [--nonblock-via fcntl|ioctl] [--threads N]"
      " [--no-reuseport] [--reuseaddr] [--v6only 0|1] [--backlog N] [--nodelay]"
      " [--keepalive IDLE,INTVL,CNT] [--ready-file PATH] [--log PATH] [--exit-after N]"
      " [--linger-close]",
      message);
}

static enum loop_style parse_loop(const char *text) {
  static const struct {
    const char *name;
    enum loop_style style;
  } styles[] = {{"blocking", LOOP_BLOCKING},   {"poll", LOOP_POLL},
                {"select", LOOP_SELECT},       {"epoll-lt", LOOP_EPOLL_LT},
                {"epoll-et", LOOP_EPOLL_ET},   {"epoll-oneshot", LOOP_EPOLL_ONESHOT}};
  for (size_t i = 0; i < sizeof(styles) / sizeof(styles[0]); i++) {
    if (strcmp(text, styles[i].name) == 0) return styles[i].style;
  }
  usage_error("--loop: unknown loop style");
  return LOOP_BLOCKING;
}

static void parse_keepalive(const char *text, struct keepalive_settings *out) {
  int idle, interval, count, consumed = 0;
  if (sscanf(text, "%d,%d,%d%n", &idle, &interval, &count, &consumed) != 3 ||
      text[consumed] != '\0' || idle <= 0 || interval <= 0 || count <= 0) {
    usage_error("--keepalive: expected IDLE,INTVL,CNT (positive numbers)");
  }
  *out = (struct keepalive_settings){1, idle, interval, count};
}

static void parse_options(int argc, char **argv) {
  options = (struct tcp_member_options){.host = "0.0.0.0", .threads = 1, .reuseport = 1,
                                        .v6only = -1, .backlog = SOMAXCONN};
  snprintf(options.id, sizeof(options.id), "pid%d", (int)getpid());
  static const struct option long_options[] = {
      {"host", required_argument, 0, 'h'},       {"port", required_argument, 0, 'p'},
      {"id", required_argument, 0, 'i'},         {"loop", required_argument, 0, 'L'},
      {"accept", required_argument, 0, 'a'},     {"nonblock-via", required_argument, 0, 'n'},
      {"threads", required_argument, 0, 't'},    {"no-reuseport", no_argument, 0, 'R'},
      {"reuseaddr", no_argument, 0, 'A'},        {"v6only", required_argument, 0, '6'},
      {"backlog", required_argument, 0, 'b'},    {"nodelay", no_argument, 0, 'D'},
      {"keepalive", required_argument, 0, 'k'},  {"ready-file", required_argument, 0, 'r'},
      {"log", required_argument, 0, 'l'},        {"exit-after", required_argument, 0, 'x'},
      {"linger-close", no_argument, 0, 'g'},     {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
    switch (c) {
      case 'h': options.host = optarg; break;
      case 'p': options.port = (unsigned)parse_number_arg("--port", optarg, 65535); break;
      case 'i':
        if (optarg[0] == '\0' || strchr(optarg, ' ') || strlen(optarg) >= sizeof(options.id)) {
          usage_error("--id: must be non-empty, without spaces, under 256 bytes");
        }
        snprintf(options.id, sizeof(options.id), "%s", optarg);
        break;
      case 'L': options.loop = parse_loop(optarg); break;
      case 'a':
        if (strcmp(optarg, "accept") == 0) options.use_accept4 = 0;
        else if (strcmp(optarg, "accept4") == 0) options.use_accept4 = 1;
        else usage_error("--accept: expected accept or accept4");
        break;
      case 'n':
        if (strcmp(optarg, "fcntl") == 0) options.nonblock_via_ioctl = 0;
        else if (strcmp(optarg, "ioctl") == 0) options.nonblock_via_ioctl = 1;
        else usage_error("--nonblock-via: expected fcntl or ioctl");
        break;
      case 't': options.threads = (unsigned)parse_number_arg("--threads", optarg, 256); break;
      case 'R': options.reuseport = 0; break;
      case 'A': options.reuseaddr = 1; break;
      case '6': options.v6only = (int)parse_number_arg("--v6only", optarg, 1); break;
      case 'b': options.backlog = (int)parse_number_arg("--backlog", optarg, 65535); break;
      case 'D': options.nodelay = 1; break;
      case 'k': parse_keepalive(optarg, &options.keepalive); break;
      case 'r': options.ready_file = optarg; break;
      case 'l': options.log_path = optarg; break;
      case 'x': options.exit_after = parse_number_arg("--exit-after", optarg, 1UL << 31); break;
      case 'g': options.linger_close = 1; break;
      default: usage_error("unknown option");
    }
  }
  if (optind != argc) usage_error("unexpected argument");
  if (options.threads == 0) usage_error("--threads: must be at least 1");
  if (options.threads > 1 && options.loop != LOOP_BLOCKING) {
    usage_error("--threads: only with --loop blocking");
  }
}

static void set_int_option(int fd, int level, int name, const char *name_text, int value,
                           int exit_status) {
  if (setsockopt(fd, level, name, &value, sizeof(value)) != 0) {
    char what[64];
    snprintf(what, sizeof(what), "setsockopt(%s)", name_text);
    die_errno(what, errno, exit_status);
  }
}

static void make_nonblocking(int fd) {
  if (options.nonblock_via_ioctl) {
    int on = 1;
    if (ioctl(fd, FIONBIO, &on) != 0) die_errno("ioctl(FIONBIO)", errno, MEMBER_EXIT_OTHER);
    return;
  }
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    die_errno("fcntl(O_NONBLOCK)", errno, MEMBER_EXIT_OTHER);
  }
}

/* Creates, configures, binds and listens; checks the result; writes the ready
 * file last, so a test that sees it can connect at once. */
static void open_listener(void) {
  struct sockaddr_storage addr;
  socklen_t addr_len;
  if (parse_host_port(options.host, options.port, &addr, &addr_len) != 0) {
    usage_error("--host: not a numeric IPv4 or IPv6 address");
  }
  listen_fd = socket(addr.ss_family, SOCK_STREAM, 0);
  if (listen_fd < 0) die_errno("socket", errno, MEMBER_EXIT_OTHER);
  if (options.reuseaddr) {
    set_int_option(listen_fd, SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR", 1, MEMBER_EXIT_OTHER);
  }
  if (options.reuseport) {
    set_int_option(listen_fd, SOL_SOCKET, SO_REUSEPORT, "SO_REUSEPORT", 1,
                   MEMBER_EXIT_REUSEPORT);
  }
  if (options.v6only >= 0) {
    set_int_option(listen_fd, IPPROTO_IPV6, IPV6_V6ONLY, "IPV6_V6ONLY", options.v6only,
                   MEMBER_EXIT_OTHER);
  }
  if (options.nodelay) {
    set_int_option(listen_fd, IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY", 1, MEMBER_EXIT_OTHER);
  }
  if (options.keepalive.enabled) {
    set_int_option(listen_fd, SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE", 1, MEMBER_EXIT_OTHER);
    set_int_option(listen_fd, IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE", options.keepalive.idle,
                   MEMBER_EXIT_OTHER);
    set_int_option(listen_fd, IPPROTO_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL",
                   options.keepalive.interval, MEMBER_EXIT_OTHER);
    set_int_option(listen_fd, IPPROTO_TCP, TCP_KEEPCNT, "TCP_KEEPCNT", options.keepalive.count,
                   MEMBER_EXIT_OTHER);
  }
  if (bind(listen_fd, (struct sockaddr *)&addr, addr_len) != 0) {
    die_errno("bind", errno, MEMBER_EXIT_BIND);
  }
  if (listen(listen_fd, options.backlog) != 0) die_errno("listen", errno, MEMBER_EXIT_LISTEN);
  /* Nothing but the program changes its file status flags: a listener it
   * never made non-blocking must still block (its accept loop would spin). */
  if (fcntl(listen_fd, F_GETFL) & O_NONBLOCK) {
    fprintf(stderr, "tcp_member: the listener is non-blocking, though nobody asked for that\n");
    exit(MEMBER_EXIT_SOCKET_CHECK);
  }
  /* Every loop except the blocking one makes the listener non-blocking, as
   * real event-driven servers do: another process may take the connection
   * between readiness and accept(). */
  if (options.loop != LOOP_BLOCKING) make_nonblocking(listen_fd);
  unsigned port = check_bound_socket(listen_fd, (struct sockaddr *)&addr, SOCK_STREAM,
                                     IPPROTO_TCP, options.reuseport);
  exit_on_signal(listen_fd);
  if (options.ready_file != NULL) write_ready_file(options.ready_file, port);
}

static long long monotonic_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Waits up to the deadline for events on fd; 1 if ready, 0 on timeout. */
static int wait_for(int fd, short events, long long deadline_ms) {
  for (;;) {
    long long remaining = deadline_ms - monotonic_ms();
    if (remaining <= 0) return 0;
    struct pollfd p = {.fd = fd, .events = events};
    int n = poll(&p, 1, (int)remaining);
    if (n > 0) return 1;
    if (n < 0 && errno != EINTR) return 0;
  }
}

/* Reads one request line into buf (newline stripped); returns its length, or
 * -1 if the client sent no complete line in time. Works for blocking and
 * non-blocking fds alike. */
static int read_request_line(int fd, char *buf, size_t buf_size, long long deadline_ms) {
  size_t used = 0;
  while (used < buf_size - 1) {
    if (!wait_for(fd, POLLIN, deadline_ms)) return -1;
    ssize_t n = recv(fd, buf + used, buf_size - 1 - used, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return -1;
    char *newline = memchr(buf + used, '\n', (size_t)n);
    used += (size_t)n;
    if (newline != NULL) {
      size_t len = (size_t)(newline - buf);
      if (len > 0 && buf[len - 1] == '\r') len--;
      buf[len] = '\0';
      return (int)len;
    }
  }
  return -1;
}

static void send_all(int fd, const char *data, size_t len, long long deadline_ms) {
  while (len > 0) {
    ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      if (!wait_for(fd, POLLOUT, deadline_ms)) return;
      continue;
    }
    if (n <= 0) return; /* the client went away; nothing to tell it */
    data += n;
    len -= (size_t)n;
  }
}

static int sockopt_int(int fd, int level, int name) {
  int value = -1;
  socklen_t len = sizeof(value);
  if (getsockopt(fd, level, name, &value, &len) != 0) return -1;
  return value;
}

/* Appends " inherit-ok" or " inherit-BAD <option>=<value>..." describing
 * whether the accepted socket inherited the options set on the listener. */
static void describe_inheritance(int fd, char *out, size_t out_size) {
  char bad[256] = "";
  size_t bad_len = 0;
#define EXPECT_INHERITED(cond, name, value)                                        \
  do {                                                                            \
    int got_ = (value);                                                           \
    if (!(cond)) {                                                                \
      bad_len += (size_t)snprintf(bad + bad_len, sizeof(bad) - bad_len, " %s=%d", \
                                  name, got_);                                    \
      if (bad_len >= sizeof(bad)) bad_len = sizeof(bad) - 1;                      \
    }                                                                             \
  } while (0)
  if (options.nodelay) {
    int v = sockopt_int(fd, IPPROTO_TCP, TCP_NODELAY);
    EXPECT_INHERITED(v > 0, "TCP_NODELAY", v);
  }
  if (options.keepalive.enabled) {
    int v = sockopt_int(fd, SOL_SOCKET, SO_KEEPALIVE);
    EXPECT_INHERITED(v > 0, "SO_KEEPALIVE", v);
    v = sockopt_int(fd, IPPROTO_TCP, TCP_KEEPIDLE);
    EXPECT_INHERITED(v == options.keepalive.idle, "TCP_KEEPIDLE", v);
    v = sockopt_int(fd, IPPROTO_TCP, TCP_KEEPINTVL);
    EXPECT_INHERITED(v == options.keepalive.interval, "TCP_KEEPINTVL", v);
    v = sockopt_int(fd, IPPROTO_TCP, TCP_KEEPCNT);
    EXPECT_INHERITED(v == options.keepalive.count, "TCP_KEEPCNT", v);
  }
#undef EXPECT_INHERITED
  snprintf(out, out_size, bad_len == 0 ? " inherit-ok" : " inherit-BAD%s", bad);
}

static void lingering_close(int fd, long long deadline_ms) {
  /* Half-close and wait for the client's FIN, so the client closes first and
   * the member is not left with TIME_WAIT or an RST for unread data. */
  shutdown(fd, SHUT_WR);
  char sink[256];
  while (wait_for(fd, POLLIN, deadline_ms)) {
    ssize_t n = recv(fd, sink, sizeof(sink), 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) break;
  }
}

static void serve_connection(int fd) {
  long long deadline_ms = monotonic_ms() + REQUEST_TIMEOUT_MS;
  char request[MAX_REQUEST];
  int len = read_request_line(fd, request, sizeof(request), deadline_ms);
  static const char kHello[] = "HELLO ";
  if (len > (int)strlen(kHello) && strncmp(request, kHello, strlen(kHello)) == 0) {
    const char *token = request + strlen(kHello);
    append_request_log(log_fd, token, strlen(token));
    char inheritance[300] = "";
    if (options.nodelay || options.keepalive.enabled) {
      describe_inheritance(fd, inheritance, sizeof(inheritance));
    }
    char reply[1024];
    int reply_len = snprintf(reply, sizeof(reply), "%s %s%s\n", options.id, token, inheritance);
    if (reply_len >= (int)sizeof(reply)) reply_len = (int)sizeof(reply) - 1;
    send_all(fd, reply, (size_t)reply_len, deadline_ms);
    if (options.linger_close) lingering_close(fd, deadline_ms);
    close(fd);
    unsigned long served = atomic_fetch_add(&requests_served, 1) + 1;
    if (options.exit_after != 0 && served >= options.exit_after) {
      close(listen_fd);
      exit(MEMBER_EXIT_OK);
    }
    return;
  }
  close(fd);
}

/* Checks that the accepted fd has exactly the flags Linux gives it: accept4's
 * SOCK_NONBLOCK|SOCK_CLOEXEC, or none at all for accept() (Linux does not
 * inherit O_NONBLOCK from the listener). */
static void check_accepted_flags(int fd) {
  int status_flags = fcntl(fd, F_GETFL);
  int fd_flags = fcntl(fd, F_GETFD);
  if (status_flags < 0 || fd_flags < 0) die_errno("fcntl(accepted fd)", errno, MEMBER_EXIT_OTHER);
  int nonblocking = (status_flags & O_NONBLOCK) != 0;
  int cloexec = (fd_flags & FD_CLOEXEC) != 0;
  const char *call = options.use_accept4 ? "accept4" : "accept";
  int want = options.use_accept4;
  if (nonblocking != want) {
    die(MEMBER_EXIT_ACCEPT4_FLAGS, "%s: returned fd is %s, want %s", call,
        nonblocking ? "non-blocking" : "blocking", want ? "non-blocking" : "blocking");
  }
  if (cloexec != want) {
    die(MEMBER_EXIT_ACCEPT4_FLAGS, "%s: returned fd is %sclose-on-exec, want %sclose-on-exec",
        call, cloexec ? "" : "not ", want ? "" : "not ");
  }
}

/* Accepts one connection; returns its fd, or -1 when there is nothing to
 * accept right now (EAGAIN) or the error concerns only that connection. */
static int accept_one(void) {
  int fd = options.use_accept4
               ? accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)
               : accept(listen_fd, NULL, NULL);
  if (fd >= 0) {
    check_accepted_flags(fd);
    return fd;
  }
  switch (errno) {
    case EAGAIN:
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    case EPERM: /* firewall rules */
    case ENETDOWN: case ENOPROTOOPT: case EHOSTDOWN: case ENONET:
    case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH:
      return -1; /* accept(2): pending network errors are reported as accept errors */
    default:
      die_errno(options.use_accept4 ? "accept4" : "accept", errno, MEMBER_EXIT_OTHER);
  }
}

static void *blocking_loop(void *unused) {
  (void)unused;
  for (;;) {
    int fd = accept_one();
    if (fd >= 0) serve_connection(fd);
  }
  return NULL;
}

static void run_blocking(void) {
  for (unsigned i = 1; i < options.threads; i++) {
    pthread_t thread;
    int err = pthread_create(&thread, NULL, blocking_loop, NULL);
    if (err != 0) die_errno("pthread_create", err, MEMBER_EXIT_OTHER);
  }
  blocking_loop(NULL);
}

static void run_poll(void) {
  for (;;) {
    struct pollfd p = {.fd = listen_fd, .events = POLLIN};
    int n = poll(&p, 1, -1);
    if (n < 0 && errno != EINTR) die_errno("poll", errno, MEMBER_EXIT_OTHER);
    if (n > 0 && (p.revents & POLLIN)) {
      int fd = accept_one();
      if (fd >= 0) serve_connection(fd);
    }
  }
}

static void run_select(void) {
  if (listen_fd >= FD_SETSIZE) die(MEMBER_EXIT_OTHER, "select: listener fd %d too large", listen_fd);
  for (;;) {
    fd_set readable;
    FD_ZERO(&readable);
    FD_SET(listen_fd, &readable);
    int n = select(listen_fd + 1, &readable, NULL, NULL, NULL);
    if (n < 0 && errno != EINTR) die_errno("select", errno, MEMBER_EXIT_OTHER);
    if (n > 0 && FD_ISSET(listen_fd, &readable)) {
      int fd = accept_one();
      if (fd >= 0) serve_connection(fd);
    }
  }
}

static void accept_until_empty(void) {
  for (;;) {
    int fd = accept_one();
    if (fd < 0) {
      if (errno == EAGAIN) return;
      continue;
    }
    serve_connection(fd);
  }
}

static void run_epoll(void) {
  int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) die_errno("epoll_create1", errno, MEMBER_EXIT_OTHER);
  uint32_t events = EPOLLIN;
  if (options.loop == LOOP_EPOLL_ET) events |= EPOLLET;
  if (options.loop == LOOP_EPOLL_ONESHOT) events |= EPOLLONESHOT;
  struct epoll_event interest = {.events = events, .data.fd = listen_fd};
  if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd, &interest) != 0) {
    die_errno("epoll_ctl(ADD)", errno, MEMBER_EXIT_OTHER);
  }
  for (;;) {
    struct epoll_event ready;
    int n = epoll_wait(epoll_fd, &ready, 1, -1);
    if (n < 0 && errno != EINTR) die_errno("epoll_wait", errno, MEMBER_EXIT_OTHER);
    if (n <= 0) continue;
    if (options.loop == LOOP_EPOLL_LT) {
      int fd = accept_one();
      if (fd >= 0) serve_connection(fd);
      continue;
    }
    /* Edge-triggered: no new event until the queue has been drained. One-shot:
     * drain the batch, then re-arm. */
    accept_until_empty();
    if (options.loop == LOOP_EPOLL_ONESHOT &&
        epoll_ctl(epoll_fd, EPOLL_CTL_MOD, listen_fd, &interest) != 0) {
      die_errno("epoll_ctl(MOD)", errno, MEMBER_EXIT_OTHER);
    }
  }
}

int main(int argc, char **argv) {
  parse_options(argc, argv);
  log_fd = open_request_log(options.log_path);
  open_listener();
  switch (options.loop) {
    case LOOP_BLOCKING: run_blocking(); break;
    case LOOP_POLL: run_poll(); break;
    case LOOP_SELECT: run_select(); break;
    case LOOP_EPOLL_LT:
    case LOOP_EPOLL_ET:
    case LOOP_EPOLL_ONESHOT: run_epoll(); break;
  }
  return MEMBER_EXIT_OK;
}
