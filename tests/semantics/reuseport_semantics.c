/* reuseport_semantics: which socket of a mixed SO_REUSEPORT port gets which
 * traffic, and what the program is told about it.
 *
 * Modelled on the kernel's selftests reuseport_dualstack.c (IPv4 traffic
 * prefers AF_INET sockets over dual-stack AF_INET6 ones, whichever joined
 * first) and reuseport_addr_any.c (a socket on a specific address beats the
 * wildcards bound before and after it, for 127.0.0.1, ::1 and
 * ::ffff:127.0.0.1), plus the orders those leave out (the specific address
 * first, IPV6_V6ONLY, traffic queued before a wider socket joins). Written for
 * this project; nothing of theirs is copied.
 *
 * Like the member programs it knows nothing about the shim: it uses the plain
 * sockets API in one process, as the selftests do, so the same binary runs on
 * a kernel with SO_REUSEPORT (the reference), under reuseport-legacy-kernel
 * with libreuseport.so and reuseportd, and on a real old kernel.
 *
 * Each case prints lines that do not depend on ports, hashes or timing:
 *
 *   <case> member <n> <kind> bind=ok listen=ok name=inet:127.0.0.1:P domain=inet
 *   <case> send <n> <dest> x<count>: <kind> accept=... name=... peer=... domain=...
 *   <case> leftover none
 *
 * P is the case's port, C the client's own port. "Which member" is the kind of
 * socket (its family, address and IPV6_V6ONLY), never its index: a hash picks
 * among equal members, and that choice is not part of the contract. With
 * --expect FILE (lines from a run on a kernel with SO_REUSEPORT) each case is
 * compared with the reference and judged PASS, FAIL (with the differing lines)
 * or SKIP (IPv6 missing here), ending with "N passed, N failed, N skipped".
 *
 * --bind-matrix prints instead what this kernel answers, without SO_REUSEPORT,
 * to a second bind of each kind after each kind ("bind-matrix udp v6any then
 * v4any: EADDRINUSE"): where old and new kernels differ, the shim takes
 * different paths.
 *
 * Exit status: 0 all compared cases passed (or, without --expect, all ran);
 * 1 some case failed; 2 usage or an unexpected local error. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "reuseport/errno_name.h"

/* --- What a case is made of ---------------------------------------------- */

enum kind { V4ANY, V6ANY, V6ONLY, V4LO, V6LO, MAPPED, KIND_COUNT };

struct kind_info {
  const char *name;
  int family;
  const char *address;
  int v6only; /* -1: leave the system's default (dual-stack), 1: IPV6_V6ONLY */
};

static const struct kind_info kinds[KIND_COUNT] = {
    [V4ANY] = {"v4any", AF_INET, "0.0.0.0", -1},
    [V6ANY] = {"v6any", AF_INET6, "::", -1},
    [V6ONLY] = {"v6only", AF_INET6, "::", 1},
    [V4LO] = {"v4lo", AF_INET, "127.0.0.1", -1},
    [V6LO] = {"v6lo", AF_INET6, "::1", -1},
    [MAPPED] = {"mapped", AF_INET6, "::ffff:127.0.0.1", -1},
};

/* Traffic: the destination, and the family of the client that sends it. */
enum dest { TO_V4LO, TO_V4OTHER, TO_V6LO, DEST_COUNT };

struct dest_info {
  const char *name;
  int family;
  const char *address;
};

static const struct dest_info dests[DEST_COUNT] = {
    [TO_V4LO] = {"127.0.0.1", AF_INET, "127.0.0.1"},
    [TO_V4OTHER] = {"127.0.0.2", AF_INET, "127.0.0.2"}, /* loopback too, but not 127.0.0.1 */
    [TO_V6LO] = {"::1", AF_INET6, "::1"},
};

/* A step binds `count` sockets of a kind, or sends `count` flows to a
 * destination. Flows are received after the last step, so a send placed
 * before a bind leaves its flows queued while the later socket joins. */
struct step {
  enum { BIND, SEND, END } what;
  int which; /* enum kind or enum dest */
  int count;
};

#define B(k, n) {BIND, k, n}
#define S(d, n) {SEND, d, n}
#define MAX_STEPS 12

struct test_case {
  const char *name; /* without the protocol */
  struct step steps[MAX_STEPS];
};

/* The kernel's two selftests' sections (dualstack: 4 UDP + 2 TCP; addr_any:
 * 3 UDP + 3 TCP, DCCP left out), each run for both protocols, then orders and
 * options they do not try. Every case runs for UDP and for TCP. */
static const struct test_case cases[] = {
    /* reuseport_dualstack: 5 + 5 sockets (16 + 16 "large": UDP lookups take
     * another path above 10 sockets), IPv4 traffic must reach AF_INET ones. */
    {"dualstack.v4-then-v6", {B(V4ANY, 5), B(V6ANY, 5), S(TO_V4LO, 4), S(TO_V6LO, 4), {END, 0, 0}}},
    {"dualstack.v6-then-v4", {B(V6ANY, 5), B(V4ANY, 5), S(TO_V4LO, 4), S(TO_V6LO, 4), {END, 0, 0}}},
    {"dualstack.v4-then-v6.large", {B(V4ANY, 16), B(V6ANY, 16), S(TO_V4LO, 4), S(TO_V6LO, 4), {END, 0, 0}}},
    {"dualstack.v6-then-v4.large", {B(V6ANY, 16), B(V4ANY, 16), S(TO_V4LO, 4), S(TO_V6LO, 4), {END, 0, 0}}},
    /* reuseport_addr_any: wildcards of both families before and after one
     * specific socket; the specific one must get its address's traffic. */
    {"addr_any.v4",
     {B(V4ANY, 2), B(V6ANY, 2), B(V4LO, 1), B(V4ANY, 2), B(V6ANY, 2), S(TO_V4LO, 4), S(TO_V4OTHER, 4),
      S(TO_V6LO, 4), {END, 0, 0}}},
    {"addr_any.v6",
     {B(V4ANY, 2), B(V6ANY, 2), B(V6LO, 1), B(V4ANY, 2), B(V6ANY, 2), S(TO_V4LO, 4), S(TO_V6LO, 4), {END, 0, 0}}},
    {"addr_any.mapped",
     {B(V4ANY, 2), B(V6ANY, 2), B(MAPPED, 1), B(V4ANY, 2), B(V6ANY, 2), S(TO_V4LO, 4), S(TO_V4OTHER, 4),
      S(TO_V6LO, 4), {END, 0, 0}}},
    /* The addr_any arrangement without IPv6, for kernels built without it. */
    {"addr_any.v4-only", {B(V4ANY, 2), B(V4LO, 1), B(V4ANY, 2), S(TO_V4LO, 4), S(TO_V4OTHER, 4), {END, 0, 0}}},
    /* A narrower socket first, the wider one after it. */
    {"order.v4lo-then-v4any", {B(V4LO, 2), B(V4ANY, 2), S(TO_V4LO, 4), S(TO_V4OTHER, 4), {END, 0, 0}}},
    {"order.v4any-then-v4lo", {B(V4ANY, 2), B(V4LO, 2), S(TO_V4LO, 4), S(TO_V4OTHER, 4), {END, 0, 0}}},
    {"order.v4lo-then-v6any",
     {B(V4LO, 2), B(V6ANY, 2), S(TO_V4LO, 4), S(TO_V4OTHER, 4), S(TO_V6LO, 4), {END, 0, 0}}},
    {"order.v6lo-then-v6any", {B(V6LO, 2), B(V6ANY, 2), S(TO_V6LO, 4), S(TO_V4LO, 4), {END, 0, 0}}},
    {"order.mapped-then-v4any", {B(MAPPED, 2), B(V4ANY, 2), S(TO_V4LO, 4), S(TO_V4OTHER, 4), {END, 0, 0}}},
    {"order.mapped-then-v6any",
     {B(MAPPED, 2), B(V6ANY, 2), S(TO_V4LO, 4), S(TO_V4OTHER, 4), S(TO_V6LO, 4), {END, 0, 0}}},
    {"order.v4any-then-mapped", {B(V4ANY, 2), B(MAPPED, 2), S(TO_V4LO, 4), S(TO_V4OTHER, 4), {END, 0, 0}}},
    /* IPV6_V6ONLY: the IPv6 wildcard leaves IPv4 alone, in either order. */
    {"v6only.v4any-then-v6only", {B(V4ANY, 2), B(V6ONLY, 2), S(TO_V4LO, 4), S(TO_V6LO, 4), {END, 0, 0}}},
    {"v6only.v6only-then-v4any", {B(V6ONLY, 2), B(V4ANY, 2), S(TO_V4LO, 4), S(TO_V6LO, 4), {END, 0, 0}}},
    {"v6only.v6only-then-v6any", {B(V6ONLY, 2), B(V6ANY, 2), S(TO_V4LO, 4), S(TO_V6LO, 4), {END, 0, 0}}},
    /* Traffic waiting in a narrower socket when a wider one joins: nothing
     * may be refused or lost, and it stays where it was queued. */
    {"queued.v4lo-then-v4any", {B(V4LO, 1), S(TO_V4LO, 3), B(V4ANY, 1), S(TO_V4LO, 3), S(TO_V4OTHER, 3), {END, 0, 0}}},
    {"queued.v4any-then-v6any", {B(V4ANY, 1), S(TO_V4LO, 3), B(V6ANY, 1), S(TO_V4LO, 3), S(TO_V6LO, 3), {END, 0, 0}}},
    {"queued.v6lo-then-v6any", {B(V6LO, 1), S(TO_V6LO, 3), B(V6ANY, 1), S(TO_V6LO, 3), S(TO_V4LO, 3), {END, 0, 0}}},
};
#define CASE_COUNT ((int)(sizeof(cases) / sizeof(cases[0])))

/* --- Settings and output ------------------------------------------------- */

static int wait_ms = 2000;       /* how long to wait for traffic to show up */
static FILE *out;                /* the case lines */
static const char *expect_path;  /* compare with this reference */
static int ipv6_ok;              /* this host can bind ::1 */
static char ipv6_missing[64];    /* why not */

#define MAX_LINES 256
#define LINE_LEN 512

struct lines {
  int count;
  char text[MAX_LINES][LINE_LEN];
};

static void add_line(struct lines *l, const char *format, ...) __attribute__((format(printf, 2, 3)));
static void add_line(struct lines *l, const char *format, ...) {
  if (l->count == MAX_LINES) return;
  va_list args;
  va_start(args, format);
  vsnprintf(l->text[l->count], LINE_LEN, format, args);
  va_end(args);
  l->count++;
}

static _Noreturn void fatal(const char *what) {
  fprintf(stderr, "reuseport_semantics: %s: %s (%s)\n", what, strerror(errno), rp_errno_name(errno));
  exit(2);
}

static long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

/* --- Addresses as text, without the ports that change from run to run ---- */

static socklen_t make_address(int family, const char *text, unsigned port, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof(*ss));
  if (family == AF_INET) {
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    in->sin_family = AF_INET;
    in->sin_port = htons((unsigned short)port);
    inet_pton(AF_INET, text, &in->sin_addr);
    return sizeof(*in);
  }
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons((unsigned short)port);
  inet_pton(AF_INET6, text, &in6->sin6_addr);
  return sizeof(*in6);
}

static unsigned port_of(const struct sockaddr_storage *ss) {
  if (ss->ss_family == AF_INET) return ntohs(((const struct sockaddr_in *)ss)->sin_port);
  if (ss->ss_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
  return 0;
}

/* "inet:127.0.0.1:P", "inet6:[::ffff:127.0.0.1]:C"; the length is added when
 * it is not the family's own (a sign of an address of the wrong family). */
static void describe(const struct sockaddr_storage *ss, socklen_t len, unsigned case_port, unsigned client_port,
                     char *buf, size_t size) {
  char ip[INET6_ADDRSTRLEN] = "?";
  char port[16];
  unsigned p = port_of(ss);
  if (p == case_port) {
    snprintf(port, sizeof(port), "P");
  } else if (p == client_port && p != 0) {
    snprintf(port, sizeof(port), "C");
  } else {
    snprintf(port, sizeof(port), "%u", p);
  }
  if (ss->ss_family == AF_INET) {
    inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, ip, sizeof(ip));
    snprintf(buf, size, "inet:%s:%s%s", ip, port, len == sizeof(struct sockaddr_in) ? "" : "/len?");
  } else if (ss->ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, ip, sizeof(ip));
    snprintf(buf, size, "inet6:[%s]:%s%s", ip, port, len == sizeof(struct sockaddr_in6) ? "" : "/len?");
  } else {
    snprintf(buf, size, "family%d/len%u", ss->ss_family, (unsigned)len);
  }
}

static const char *family_name(int family) {
  return family == AF_INET ? "inet" : family == AF_INET6 ? "inet6" : "other";
}

static void describe_domain(int fd, char *buf, size_t size) {
  int domain = 0;
  socklen_t len = sizeof(domain);
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) {
    snprintf(buf, size, "%s", rp_errno_name(errno));
  } else {
    snprintf(buf, size, "%s", family_name(domain));
  }
}

static void describe_name(int fd, int peer, unsigned case_port, unsigned client_port, char *buf, size_t size) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  memset(&ss, 0, sizeof(ss));
  int r = peer ? getpeername(fd, (struct sockaddr *)&ss, &len) : getsockname(fd, (struct sockaddr *)&ss, &len);
  if (r != 0) {
    snprintf(buf, size, "%s", rp_errno_name(errno));
  } else {
    describe(&ss, len, case_port, client_port, buf, size);
  }
}

/* --- One case ------------------------------------------------------------ */

#define MAX_MEMBERS 40
#define MAX_FLOWS 24

struct member {
  int fd; /* -1 when bind failed */
  enum kind kind;
};

struct flow {
  int step;       /* index of its SEND step */
  int client;     /* the client's socket */
  unsigned client_port;
  char outcome[LINE_LEN]; /* what happened to it, "" until known */
};

struct run {
  int type; /* SOCK_STREAM or SOCK_DGRAM */
  unsigned port;
  struct member members[MAX_MEMBERS];
  int member_count;
  struct flow flows[MAX_FLOWS];
  int flow_count;
};

static int set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* A port free for this case's protocol on every address it uses. */
static unsigned free_port(int type) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    int family = ipv6_ok ? AF_INET6 : AF_INET;
    int fd = socket(family, type, 0);
    if (fd < 0) fatal("socket (free port)");
    struct sockaddr_storage ss;
    socklen_t len = make_address(family, family == AF_INET6 ? "::" : "0.0.0.0", 0, &ss);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0) fatal("bind (free port)");
    len = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &len);
    unsigned port = port_of(&ss);
    close(fd);
    /* The other protocol's socket need not be free; this one's must, for
     * both families, which a dual-stack bind above has shown. */
    if (port != 0) return port;
  }
  errno = EADDRINUSE;
  fatal("no free port");
}

static void bind_members(struct run *r, const char *case_name, enum kind kind, int count, struct lines *l) {
  const struct kind_info *k = &kinds[kind];
  for (int i = 0; i < count && r->member_count < MAX_MEMBERS; ++i) {
    struct member *m = &r->members[r->member_count++];
    m->kind = kind;
    m->fd = socket(k->family, r->type, 0);
    if (m->fd < 0) fatal("socket");
    char result[LINE_LEN];
    int one = 1;
    if (setsockopt(m->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
      snprintf(result, sizeof(result), "reuseport=%s", rp_errno_name(errno));
      goto failed;
    }
    if (k->v6only >= 0 && setsockopt(m->fd, IPPROTO_IPV6, IPV6_V6ONLY, &k->v6only, sizeof(k->v6only)) != 0) {
      snprintf(result, sizeof(result), "v6only=%s", rp_errno_name(errno));
      goto failed;
    }
    struct sockaddr_storage ss;
    socklen_t len = make_address(k->family, k->address, r->port, &ss);
    if (bind(m->fd, (struct sockaddr *)&ss, len) != 0) {
      snprintf(result, sizeof(result), "bind=%s", rp_errno_name(errno));
      goto failed;
    }
    if (r->type == SOCK_STREAM && listen(m->fd, 64) != 0) {
      snprintf(result, sizeof(result), "bind=ok listen=%s", rp_errno_name(errno));
      goto failed;
    }
    if (set_nonblocking(m->fd) != 0) fatal("fcntl");
    char name[128], domain[32], v6only[32] = "";
    describe_name(m->fd, 0, r->port, 0, name, sizeof(name));
    describe_domain(m->fd, domain, sizeof(domain));
    if (k->family == AF_INET6) {
      int value = -1;
      socklen_t vlen = sizeof(value);
      if (getsockopt(m->fd, IPPROTO_IPV6, IPV6_V6ONLY, &value, &vlen) == 0) {
        snprintf(v6only, sizeof(v6only), " v6only=%d", value);
      } else {
        snprintf(v6only, sizeof(v6only), " v6only=%s", rp_errno_name(errno));
      }
    }
    add_line(l, "%s member %d %s bind=ok%s name=%s domain=%s%s", case_name, r->member_count, k->name,
             r->type == SOCK_STREAM ? " listen=ok" : "", name, domain, v6only);
    continue;
  failed:
    add_line(l, "%s member %d %s %s", case_name, r->member_count, k->name, result);
    close(m->fd);
    m->fd = -1;
  }
}

static void send_flows(struct run *r, int step, enum dest dest, int count) {
  const struct dest_info *d = &dests[dest];
  for (int i = 0; i < count && r->flow_count < MAX_FLOWS; ++i) {
    int index = r->flow_count++;
    struct flow *f = &r->flows[index];
    f->step = step;
    f->outcome[0] = '\0';
    f->client = socket(d->family, r->type, 0);
    if (f->client < 0) fatal("socket (client)");
    struct sockaddr_storage ss;
    socklen_t len = make_address(d->family, d->family == AF_INET ? "0.0.0.0" : "::", 0, &ss);
    if (bind(f->client, (struct sockaddr *)&ss, len) != 0) fatal("bind (client)");
    len = sizeof(ss);
    getsockname(f->client, (struct sockaddr *)&ss, &len);
    f->client_port = port_of(&ss);
    char token[16];
    int token_len = snprintf(token, sizeof(token), "f%d\n", index);
    len = make_address(d->family, d->address, r->port, &ss);
    if (r->type == SOCK_STREAM) {
      if (connect(f->client, (struct sockaddr *)&ss, len) != 0) {
        snprintf(f->outcome, sizeof(f->outcome), "connect=%s", rp_errno_name(errno));
        continue;
      }
      if (send(f->client, token, (size_t)token_len, MSG_NOSIGNAL) != token_len) {
        snprintf(f->outcome, sizeof(f->outcome), "send=%s", rp_errno_name(errno));
      }
    } else if (sendto(f->client, token, (size_t)token_len, 0, (struct sockaddr *)&ss, len) != token_len) {
      snprintf(f->outcome, sizeof(f->outcome), "sendto=%s", rp_errno_name(errno));
    }
  }
}

static int flow_of(const struct run *r, const char *data, ssize_t n) {
  if (n < 2 || data[0] != 'f') return -1;
  int index = atoi(data + 1);
  return index >= 0 && index < r->flow_count ? index : -1;
}

/* Reads the token a just-accepted connection sends; -1 if none in time. */
static int read_token(int fd, const struct run *r) {
  char data[32];
  struct pollfd p = {fd, POLLIN, 0};
  if (poll(&p, 1, wait_ms) != 1) return -1;
  ssize_t n = recv(fd, data, sizeof(data) - 1, 0);
  if (n <= 0) return -1;
  data[n] = '\0';
  return flow_of(r, data, n);
}

static void take_connection(struct run *r, const struct member *m, int *unknown) {
  for (;;) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    int fd = accept(m->fd, (struct sockaddr *)&ss, &len);
    if (fd < 0) return;
    int index = read_token(fd, r);
    if (index < 0 || r->flows[index].outcome[0] != '\0') {
      ++*unknown;
      close(fd);
      continue;
    }
    struct flow *f = &r->flows[index];
    char from[128], name[128], peer[128], domain[32];
    describe(&ss, len, r->port, f->client_port, from, sizeof(from));
    describe_name(fd, 0, r->port, f->client_port, name, sizeof(name));
    describe_name(fd, 1, r->port, f->client_port, peer, sizeof(peer));
    describe_domain(fd, domain, sizeof(domain));
    snprintf(f->outcome, sizeof(f->outcome), "%s accept=%s name=%s peer=%s domain=%s", kinds[m->kind].name, from,
             name, peer, domain);
    close(fd);
  }
}

static void take_datagrams(struct run *r, const struct member *m, int *unknown) {
  for (;;) {
    char data[64];
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    ssize_t n = recvfrom(m->fd, data, sizeof(data) - 1, 0, (struct sockaddr *)&ss, &len);
    if (n < 0) return;
    data[n] = '\0';
    int index = flow_of(r, data, n);
    if (index < 0 || r->flows[index].outcome[0] != '\0') {
      ++*unknown;
      continue;
    }
    struct flow *f = &r->flows[index];
    char from[128];
    describe(&ss, len, r->port, f->client_port, from, sizeof(from));
    /* The reply goes back from the member's socket; the client says where
     * it came from (an unconnected client hears any source). */
    char reply[160] = "reply=none";
    if (sendto(m->fd, data, (size_t)n, 0, (struct sockaddr *)&ss, len) != n) {
      snprintf(reply, sizeof(reply), "reply=%s", rp_errno_name(errno));
    } else {
      struct pollfd p = {f->client, POLLIN, 0};
      if (poll(&p, 1, wait_ms) == 1) {
        struct sockaddr_storage rs;
        socklen_t rlen = sizeof(rs);
        char echo[64];
        if (recvfrom(f->client, echo, sizeof(echo), 0, (struct sockaddr *)&rs, &rlen) >= 0) {
          char source[128];
          describe(&rs, rlen, r->port, f->client_port, source, sizeof(source));
          snprintf(reply, sizeof(reply), "reply-from=%s", source);
        }
      }
    }
    snprintf(f->outcome, sizeof(f->outcome), "%s from=%s %s", kinds[m->kind].name, from, reply);
  }
}

static int flows_pending(const struct run *r) {
  int pending = 0;
  for (int i = 0; i < r->flow_count; ++i) pending += r->flows[i].outcome[0] == '\0';
  return pending;
}

/* Receives on every member until each flow is accounted for, or nothing has
 * arrived for wait_ms. */
static void receive_flows(struct run *r, int *unknown) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) fatal("epoll_create1");
  for (int i = 0; i < r->member_count; ++i) {
    if (r->members[i].fd < 0) continue;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, r->members[i].fd, &ev) != 0) fatal("epoll_ctl");
  }
  long quiet_since = now_ms();
  while (flows_pending(r) > 0 && now_ms() - quiet_since < wait_ms) {
    struct epoll_event events[16];
    int n = epoll_wait(ep, events, 16, 50);
    if (n < 0 && errno != EINTR) fatal("epoll_wait");
    for (int i = 0; i < n; ++i) {
      const struct member *m = &r->members[events[i].data.u32];
      if (r->type == SOCK_STREAM) {
        take_connection(r, m, unknown);
      } else {
        take_datagrams(r, m, unknown);
      }
      quiet_since = now_ms();
    }
  }
  close(ep);
}

static int compare_strings(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void report_flows(const struct run *r, const char *case_name, const struct test_case *c, struct lines *l) {
  for (int s = 0; s < MAX_STEPS && c->steps[s].what != END; ++s) {
    if (c->steps[s].what != SEND) continue;
    const char *outcomes[MAX_FLOWS];
    int n = 0;
    for (int i = 0; i < r->flow_count; ++i) {
      if (r->flows[i].step != s) continue;
      outcomes[n++] = r->flows[i].outcome[0] != '\0' ? r->flows[i].outcome
                      : r->type == SOCK_STREAM      ? "not-accepted"
                                                    : "lost";
    }
    qsort(outcomes, (size_t)n, sizeof(outcomes[0]), compare_strings);
    for (int i = 0; i < n;) {
      int j = i;
      while (j < n && strcmp(outcomes[j], outcomes[i]) == 0) ++j;
      add_line(l, "%s send %d %s x%d: %s", case_name, s + 1, dests[c->steps[s].which].name, j - i, outcomes[i]);
      i = j;
    }
  }
}

static int case_uses_ipv6(const struct test_case *c) {
  for (int s = 0; s < MAX_STEPS && c->steps[s].what != END; ++s) {
    if (c->steps[s].what == BIND && kinds[c->steps[s].which].family == AF_INET6) return 1;
    if (c->steps[s].what == SEND && dests[c->steps[s].which].family == AF_INET6) return 1;
  }
  return 0;
}

/* Runs one case into `l`; returns 0, or 1 when it was skipped (l says why). */
static int run_case(const struct test_case *c, int type, struct lines *l) {
  char case_name[96];
  snprintf(case_name, sizeof(case_name), "%s.%s", type == SOCK_STREAM ? "tcp" : "udp", c->name);
  l->count = 0;
  if (case_uses_ipv6(c) && !ipv6_ok) {
    add_line(l, "%s skip: no IPv6 here (%s)", case_name, ipv6_missing);
    return 1;
  }
  static struct run r;
  memset(&r, 0, sizeof(r));
  r.type = type;
  r.port = free_port(type);
  for (int s = 0; s < MAX_STEPS && c->steps[s].what != END; ++s) {
    if (c->steps[s].what == BIND) {
      bind_members(&r, case_name, (enum kind)c->steps[s].which, c->steps[s].count, l);
    } else {
      send_flows(&r, s, (enum dest)c->steps[s].which, c->steps[s].count);
    }
  }
  int unknown = 0;
  receive_flows(&r, &unknown);
  report_flows(&r, case_name, c, l);
  /* Nothing else may be waiting anywhere: no flow delivered twice. */
  char leftover[LINE_LEN] = "";
  for (int i = 0; i < r.member_count; ++i) {
    if (r.members[i].fd < 0) continue;
    struct pollfd p = {r.members[i].fd, POLLIN, 0};
    if (poll(&p, 1, 0) == 1) {
      size_t used = strlen(leftover);
      snprintf(leftover + used, sizeof(leftover) - used, " %d", i + 1);
    }
  }
  add_line(l, "%s leftover%s%s", case_name, leftover[0] != '\0' || unknown ? leftover : " none",
           unknown ? " (duplicates or strangers received)" : "");
  for (int i = 0; i < r.member_count; ++i) {
    if (r.members[i].fd >= 0) close(r.members[i].fd);
  }
  for (int i = 0; i < r.flow_count; ++i) close(r.flows[i].client);
  return 0;
}

/* --- The reference -------------------------------------------------------- */

#define MAX_REFERENCE 4096
static char reference[MAX_REFERENCE][LINE_LEN]; /* every line of --expect */
static int reference_count;

static void load_reference(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) fatal(path);
  char line[LINE_LEN];
  while (fgets(line, sizeof(line), f) != NULL) {
    line[strcspn(line, "\n")] = '\0';
    if (line[0] == '\0' || line[0] == '#') continue;
    if (reference_count == MAX_REFERENCE) {
      fprintf(stderr, "reuseport_semantics: %s: more than %d lines\n", path, MAX_REFERENCE);
      exit(2);
    }
    snprintf(reference[reference_count++], LINE_LEN, "%s", line);
  }
  fclose(f);
}

static int line_of_case(const char *line, const char *case_name) {
  size_t n = strlen(case_name);
  return strncmp(line, case_name, n) == 0 && line[n] == ' ';
}

/* Prints the verdict; returns 1 if the case failed. */
static int judge(const char *case_name, const struct lines *got) {
  static struct lines want;
  want.count = 0;
  for (int i = 0; i < reference_count; ++i) {
    if (line_of_case(reference[i], case_name)) add_line(&want, "%s", reference[i]);
  }
  if (want.count == 0) {
    printf("FAIL %s: not in the reference\n", case_name);
    return 1;
  }
  int same = want.count == got->count;
  for (int i = 0; same && i < got->count; ++i) same = strcmp(want.text[i], got->text[i]) == 0;
  if (same) {
    printf("PASS %s\n", case_name);
    return 0;
  }
  printf("FAIL %s\n", case_name);
  for (int i = 0; i < want.count; ++i) {
    int found = 0;
    for (int j = 0; j < got->count && !found; ++j) found = strcmp(want.text[i], got->text[j]) == 0;
    if (!found) printf("  - %s\n", want.text[i]);
  }
  for (int i = 0; i < got->count; ++i) {
    int found = 0;
    for (int j = 0; j < want.count && !found; ++j) found = strcmp(got->text[i], want.text[j]) == 0;
    if (!found) printf("  + %s\n", got->text[i]);
  }
  return 1;
}

/* --- The kernel's own bind conflicts ------------------------------------------ */

/* Without SO_REUSEPORT: may a socket of kind `second` bind the port a socket
 * of kind `first` holds (listening, for TCP)? What an old kernel answers here
 * decides whether the shim's first bind() makes a new real socket or has to
 * ask the broker to join, so it differs between hosts where nothing else does. */
static void bind_matrix(void) {
  for (int t = 0; t < 2; ++t) {
    const int type = t == 0 ? SOCK_DGRAM : SOCK_STREAM;
    for (int a = 0; a < KIND_COUNT; ++a) {
      for (int b = 0; b < KIND_COUNT; ++b) {
        if (!ipv6_ok && (kinds[a].family == AF_INET6 || kinds[b].family == AF_INET6)) continue;
        const unsigned port = free_port(type);
        int fds[2] = {-1, -1};
        const char *result = "ok";
        for (int i = 0; i < 2; ++i) {
          const struct kind_info *k = &kinds[i == 0 ? a : b];
          fds[i] = socket(k->family, type, 0);
          if (fds[i] < 0) fatal("socket (bind matrix)");
          if (k->v6only >= 0) setsockopt(fds[i], IPPROTO_IPV6, IPV6_V6ONLY, &k->v6only, sizeof(k->v6only));
          struct sockaddr_storage ss;
          socklen_t len = make_address(k->family, k->address, port, &ss);
          if (bind(fds[i], (struct sockaddr *)&ss, len) != 0 || (type == SOCK_STREAM && listen(fds[i], 8) != 0)) {
            result = i == 0 ? "first-failed" : rp_errno_name(errno);
            break;
          }
        }
        printf("bind-matrix %s %s then %s: %s\n", type == SOCK_STREAM ? "tcp" : "udp", kinds[a].name,
               kinds[b].name, result);
        for (int i = 0; i < 2; ++i) {
          if (fds[i] >= 0) close(fds[i]);
        }
      }
    }
  }
}

/* --- Main ---------------------------------------------------------------- */

static void probe_ipv6(void) {
  int fd = socket(AF_INET6, SOCK_DGRAM, 0);
  if (fd < 0) {
    snprintf(ipv6_missing, sizeof(ipv6_missing), "socket(AF_INET6): %s", rp_errno_name(errno));
    return;
  }
  struct sockaddr_storage ss;
  socklen_t len = make_address(AF_INET6, "::1", 0, &ss);
  if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
    snprintf(ipv6_missing, sizeof(ipv6_missing), "bind(::1): %s", rp_errno_name(errno));
  } else {
    ipv6_ok = 1;
  }
  close(fd);
}

static void usage(const char *problem) {
  fprintf(stderr,
          "reuseport_semantics: %s\n"
          "usage: reuseport_semantics [--case GLOB]... [--expect FILE] [--wait-ms N] [--out FILE] [--list]\n"
          "       reuseport_semantics --bind-matrix\n",
          problem);
  exit(2);
}

int main(int argc, char **argv) {
  static const struct option long_options[] = {{"case", required_argument, 0, 'c'},
                                               {"expect", required_argument, 0, 'e'},
                                               {"wait-ms", required_argument, 0, 'w'},
                                               {"out", required_argument, 0, 'o'},
                                               {"list", no_argument, 0, 'l'},
                                               {"bind-matrix", no_argument, 0, 'b'},
                                               {0, 0, 0, 0}};
  const char *globs[32];
  int glob_count = 0, list = 0, matrix = 0;
  out = stdout;
  int c;
  while ((c = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
    switch (c) {
      case 'c':
        if (glob_count == 32) usage("too many --case");
        globs[glob_count++] = optarg;
        break;
      case 'e': expect_path = optarg; break;
      case 'w': {
        char *end;
        long v = strtol(optarg, &end, 10);
        if (*end != '\0' || v < 1 || v > 60000) usage("--wait-ms: 1 to 60000");
        wait_ms = (int)v;
        break;
      }
      case 'o':
        out = fopen(optarg, "w");
        if (out == NULL) fatal(optarg);
        break;
      case 'l': list = 1; break;
      case 'b': matrix = 1; break;
      default: usage("unknown option");
    }
  }
  if (optind != argc) usage("unexpected argument");
  if (expect_path != NULL) load_reference(expect_path);
  probe_ipv6();
  if (matrix) {
    bind_matrix();
    return 0;
  }

  int passed = 0, failed = 0, skipped = 0;
  for (int t = 0; t < 2; ++t) {
    const int type = t == 0 ? SOCK_DGRAM : SOCK_STREAM;
    for (int i = 0; i < CASE_COUNT; ++i) {
      char case_name[96];
      snprintf(case_name, sizeof(case_name), "%s.%s", type == SOCK_STREAM ? "tcp" : "udp", cases[i].name);
      int selected = glob_count == 0;
      for (int g = 0; g < glob_count && !selected; ++g) selected = fnmatch(globs[g], case_name, 0) == 0;
      if (!selected) continue;
      if (list) {
        printf("%s\n", case_name);
        continue;
      }
      static struct lines got;
      int skip = run_case(&cases[i], type, &got);
      if (expect_path == NULL || out != stdout) {
        for (int j = 0; j < got.count; ++j) fprintf(out, "%s\n", got.text[j]);
        fflush(out);
      }
      if (expect_path == NULL) continue;
      if (skip) {
        printf("SKIP %s: %s\n", case_name, strstr(got.text[0], "skip: ") + 6);
        ++skipped;
      } else if (judge(case_name, &got)) {
        ++failed;
      } else {
        ++passed;
      }
      fflush(stdout);
    }
  }
  if (expect_path != NULL) printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  return failed ? 1 : 0;
}
