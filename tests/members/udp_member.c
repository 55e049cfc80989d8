/* udp_member: an ordinary UDP server that joins a port with SO_REUSEPORT.
 *
 * Like tcp_member it knows nothing about the reuseport shim. Each datagram is
 * answered, to its source, with "<id> <original payload>" (plus " dst=<addr>"
 * with --pktinfo, the destination address taken from the IP_PKTINFO /
 * IPV6_PKTINFO control message; the reply is then also sent from that address,
 * as multi-homed servers do). With --log, "<src-addr>:<src-port> <first token
 * of payload>\n" is appended before the reply is sent; the port follows the
 * last ':' (IPv6 addresses are not bracketed).
 *
 * Exit statuses are in member_exit.h. */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "exit_on_signal.h"
#include "member_exit.h"
#include "number_arg.h"
#include "ready_file.h"
#include "request_log.h"
#include "sockaddr_text.h"
#include "socket_checks.h"

enum io_style { IO_RECVFROM, IO_RECVMSG, IO_RECVMMSG };

struct udp_member_options {
  const char *host;
  unsigned port;
  char id[256];
  enum io_style io;
  int pktinfo;
  int reuseport;
  int reuseaddr;
  int v6only; /* -1: leave the system default */
  const char *ready_file;
  const char *log_path;
  unsigned long exit_after; /* 0: never */
};

static struct udp_member_options options;
static int socket_fd = -1;
static int log_fd = -1;
static unsigned long datagrams_served;

enum { MAX_DATAGRAM = 2048, MAX_REPLY = MAX_DATAGRAM + 512, BATCH = 16 };

static void usage_error(const char *message) {
  die(MEMBER_EXIT_USAGE,
      "%s\nusage: udp_member [--host ADDR] [--port N] [--id NAME]"
      " [--io recvfrom|recvmsg|recvmmsg] [--pktinfo] [--no-reuseport] [--reuseaddr]"
      " [--v6only 0|1] [--ready-file PATH] [--log PATH] [--exit-after N]",
      message);
}

static void parse_options(int argc, char **argv) {
  options = (struct udp_member_options){.host = "0.0.0.0", .reuseport = 1, .v6only = -1};
  snprintf(options.id, sizeof(options.id), "pid%d", (int)getpid());
  static const struct option long_options[] = {
      {"host", required_argument, 0, 'h'},      {"port", required_argument, 0, 'p'},
      {"id", required_argument, 0, 'i'},        {"io", required_argument, 0, 'o'},
      {"pktinfo", no_argument, 0, 'P'},         {"no-reuseport", no_argument, 0, 'R'},
      {"reuseaddr", no_argument, 0, 'A'},       {"v6only", required_argument, 0, '6'},
      {"ready-file", required_argument, 0, 'r'}, {"log", required_argument, 0, 'l'},
      {"exit-after", required_argument, 0, 'x'}, {0, 0, 0, 0}};
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
      case 'o':
        if (strcmp(optarg, "recvfrom") == 0) options.io = IO_RECVFROM;
        else if (strcmp(optarg, "recvmsg") == 0) options.io = IO_RECVMSG;
        else if (strcmp(optarg, "recvmmsg") == 0) options.io = IO_RECVMMSG;
        else usage_error("--io: expected recvfrom, recvmsg or recvmmsg");
        break;
      case 'P': options.pktinfo = 1; break;
      case 'R': options.reuseport = 0; break;
      case 'A': options.reuseaddr = 1; break;
      case '6': options.v6only = (int)parse_number_arg("--v6only", optarg, 1); break;
      case 'r': options.ready_file = optarg; break;
      case 'l': options.log_path = optarg; break;
      case 'x': options.exit_after = parse_number_arg("--exit-after", optarg, 1UL << 31); break;
      default: usage_error("unknown option");
    }
  }
  if (optind != argc) usage_error("unexpected argument");
  if (options.pktinfo && options.io == IO_RECVFROM) {
    usage_error("--pktinfo: needs --io recvmsg or recvmmsg (recvfrom has no control messages)");
  }
}

static void set_int_option(int level, int name, const char *name_text, int value,
                           int exit_status) {
  if (setsockopt(socket_fd, level, name, &value, sizeof(value)) != 0) {
    char what[64];
    snprintf(what, sizeof(what), "setsockopt(%s)", name_text);
    die_errno(what, errno, exit_status);
  }
}

static void open_socket(void) {
  struct sockaddr_storage addr;
  socklen_t addr_len;
  if (parse_host_port(options.host, options.port, &addr, &addr_len) != 0) {
    usage_error("--host: not a numeric IPv4 or IPv6 address");
  }
  socket_fd = socket(addr.ss_family, SOCK_DGRAM, 0);
  if (socket_fd < 0) die_errno("socket", errno, MEMBER_EXIT_OTHER);
  if (options.reuseaddr) set_int_option(SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR", 1, MEMBER_EXIT_OTHER);
  if (options.reuseport) {
    set_int_option(SOL_SOCKET, SO_REUSEPORT, "SO_REUSEPORT", 1, MEMBER_EXIT_REUSEPORT);
  }
  if (options.v6only >= 0) {
    set_int_option(IPPROTO_IPV6, IPV6_V6ONLY, "IPV6_V6ONLY", options.v6only, MEMBER_EXIT_OTHER);
  }
  if (options.pktinfo) {
    if (addr.ss_family == AF_INET6) {
      set_int_option(IPPROTO_IPV6, IPV6_RECVPKTINFO, "IPV6_RECVPKTINFO", 1, MEMBER_EXIT_OTHER);
    } else {
      set_int_option(IPPROTO_IP, IP_PKTINFO, "IP_PKTINFO", 1, MEMBER_EXIT_OTHER);
    }
  }
  if (bind(socket_fd, (struct sockaddr *)&addr, addr_len) != 0) {
    die_errno("bind", errno, MEMBER_EXIT_BIND);
  }
  unsigned port = check_bound_socket(socket_fd, (struct sockaddr *)&addr, SOCK_DGRAM,
                                     IPPROTO_UDP, options.reuseport);
  exit_on_signal(socket_fd);
  if (options.ready_file != NULL) write_ready_file(options.ready_file, port);
}

/* One received datagram and the reply being built for it. The control buffer
 * is sized for either pktinfo flavour and aligned for cmsghdr. */
struct exchange {
  struct sockaddr_storage source;
  socklen_t source_len;
  char payload[MAX_DATAGRAM];
  size_t payload_len;
  union {
    char buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo))];
    struct cmsghdr align;
  } control;
  size_t control_len;
  int truncated;
  char reply[MAX_REPLY];
  size_t reply_len;
  struct iovec reply_iov;
  union {
    char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
    struct cmsghdr align;
  } reply_control;
  size_t reply_control_len;
};

static void prepare_receive(struct exchange *x, struct msghdr *msg, struct iovec *iov) {
  iov->iov_base = x->payload;
  iov->iov_len = sizeof(x->payload);
  memset(msg, 0, sizeof(*msg));
  msg->msg_name = &x->source;
  msg->msg_namelen = sizeof(x->source);
  msg->msg_iov = iov;
  msg->msg_iovlen = 1;
  if (options.pktinfo) {
    msg->msg_control = x->control.buf;
    msg->msg_controllen = sizeof(x->control.buf);
  }
}

static void finish_receive(struct exchange *x, const struct msghdr *msg, size_t len) {
  x->source_len = msg->msg_namelen;
  x->payload_len = len;
  x->control_len = msg->msg_controllen;
  x->truncated = (msg->msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
}

/* Finds the destination address in the control messages; fills the reply's
 * control message so the reply leaves from that address. Writes "?" into
 * dst_text when there is none. */
static void read_destination(struct exchange *x, char *dst_text, size_t dst_size) {
  snprintf(dst_text, dst_size, "?");
  x->reply_control_len = 0;
  if (x->truncated) return;
  struct msghdr msg = {.msg_control = x->control.buf, .msg_controllen = x->control_len};
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
    struct cmsghdr *out = (struct cmsghdr *)x->reply_control.buf;
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO &&
        c->cmsg_len >= CMSG_LEN(sizeof(struct in_pktinfo))) {
      struct in_pktinfo info;
      memcpy(&info, CMSG_DATA(c), sizeof(info));
      struct sockaddr_in dst = {.sin_family = AF_INET, .sin_addr = info.ipi_addr};
      format_ip((struct sockaddr *)&dst, dst_text, dst_size);
      struct in_pktinfo reply_info = {.ipi_spec_dst = info.ipi_addr};
      out->cmsg_level = IPPROTO_IP;
      out->cmsg_type = IP_PKTINFO;
      out->cmsg_len = CMSG_LEN(sizeof(reply_info));
      memcpy(CMSG_DATA(out), &reply_info, sizeof(reply_info));
      x->reply_control_len = CMSG_SPACE(sizeof(reply_info));
      return;
    }
    if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO &&
        c->cmsg_len >= CMSG_LEN(sizeof(struct in6_pktinfo))) {
      struct in6_pktinfo info;
      memcpy(&info, CMSG_DATA(c), sizeof(info));
      struct sockaddr_in6 dst = {.sin6_family = AF_INET6, .sin6_addr = info.ipi6_addr};
      format_ip((struct sockaddr *)&dst, dst_text, dst_size);
      out->cmsg_level = IPPROTO_IPV6;
      out->cmsg_type = IPV6_PKTINFO;
      out->cmsg_len = CMSG_LEN(sizeof(info));
      memcpy(CMSG_DATA(out), &info, sizeof(info));
      x->reply_control_len = CMSG_SPACE(sizeof(info));
      return;
    }
  }
}

/* Logs the datagram and builds the reply in x->reply. */
static void handle_datagram(struct exchange *x) {
  char src_ip[64];
  format_ip((struct sockaddr *)&x->source, src_ip, sizeof(src_ip));
  size_t token_len = 0;
  while (token_len < x->payload_len && token_len < 200 &&
         strchr(" \t\r\n", x->payload[token_len]) == NULL && x->payload[token_len] != '\0') {
    token_len++;
  }
  char line[320];
  int line_len = snprintf(line, sizeof(line), "%s:%u %.*s", src_ip,
                          sockaddr_port((struct sockaddr *)&x->source), (int)token_len,
                          x->payload);
  append_request_log(log_fd, line, (size_t)line_len);

  size_t id_len = strlen(options.id);
  memcpy(x->reply, options.id, id_len);
  x->reply[id_len] = ' ';
  memcpy(x->reply + id_len + 1, x->payload, x->payload_len);
  x->reply_len = id_len + 1 + x->payload_len;
  x->reply_control_len = 0;
  if (options.pktinfo) {
    char dst_text[64];
    read_destination(x, dst_text, sizeof(dst_text));
    x->reply_len += (size_t)snprintf(x->reply + x->reply_len, sizeof(x->reply) - x->reply_len,
                                     " dst=%s", dst_text);
  }
}

static void prepare_reply(struct exchange *x, struct msghdr *msg) {
  x->reply_iov.iov_base = x->reply;
  x->reply_iov.iov_len = x->reply_len;
  memset(msg, 0, sizeof(*msg));
  msg->msg_name = &x->source;
  msg->msg_namelen = x->source_len;
  msg->msg_iov = &x->reply_iov;
  msg->msg_iovlen = 1;
  if (x->reply_control_len > 0) {
    msg->msg_control = x->reply_control.buf;
    msg->msg_controllen = x->reply_control_len;
  }
}

static void count_served(unsigned long n) {
  datagrams_served += n;
  if (options.exit_after != 0 && datagrams_served >= options.exit_after) {
    close(socket_fd);
    exit(MEMBER_EXIT_OK);
  }
}

static int transient_receive_error(int err) {
  /* Unconnected UDP sockets can still see ICMP errors queued for earlier replies. */
  return err == EINTR || err == EAGAIN || err == ECONNREFUSED || err == EHOSTUNREACH ||
         err == ENETUNREACH;
}

static void run_recvfrom(void) {
  static struct exchange x;
  for (;;) {
    x.source_len = sizeof(x.source);
    ssize_t n = recvfrom(socket_fd, x.payload, sizeof(x.payload), 0,
                         (struct sockaddr *)&x.source, &x.source_len);
    if (n < 0) {
      if (transient_receive_error(errno)) continue;
      die_errno("recvfrom", errno, MEMBER_EXIT_OTHER);
    }
    x.payload_len = (size_t)n;
    handle_datagram(&x);
    /* A failed reply is the client's loss (it times out); the member goes on. */
    sendto(socket_fd, x.reply, x.reply_len, 0, (struct sockaddr *)&x.source, x.source_len);
    count_served(1);
  }
}

static void run_recvmsg(void) {
  static struct exchange x;
  for (;;) {
    struct msghdr msg;
    struct iovec iov;
    prepare_receive(&x, &msg, &iov);
    ssize_t n = recvmsg(socket_fd, &msg, 0);
    if (n < 0) {
      if (transient_receive_error(errno)) continue;
      die_errno("recvmsg", errno, MEMBER_EXIT_OTHER);
    }
    finish_receive(&x, &msg, (size_t)n);
    handle_datagram(&x);
    struct msghdr reply;
    prepare_reply(&x, &reply);
    sendmsg(socket_fd, &reply, 0);
    count_served(1);
  }
}

static void run_recvmmsg(void) {
  static struct exchange batch[BATCH];
  for (;;) {
    unsigned wanted = BATCH;
    if (options.exit_after != 0 && options.exit_after - datagrams_served < wanted) {
      wanted = (unsigned)(options.exit_after - datagrams_served);
    }
    struct mmsghdr messages[BATCH];
    struct iovec iovs[BATCH];
    for (unsigned i = 0; i < wanted; i++) {
      prepare_receive(&batch[i], &messages[i].msg_hdr, &iovs[i]);
      messages[i].msg_len = 0;
    }
    /* MSG_WAITFORONE: block for the first datagram only, then take what is queued. */
    int received = recvmmsg(socket_fd, messages, wanted, MSG_WAITFORONE, NULL);
    if (received < 0) {
      if (transient_receive_error(errno)) continue;
      die_errno("recvmmsg", errno, MEMBER_EXIT_OTHER);
    }
    struct mmsghdr replies[BATCH];
    for (int i = 0; i < received; i++) {
      finish_receive(&batch[i], &messages[i].msg_hdr, messages[i].msg_len);
      handle_datagram(&batch[i]);
      prepare_reply(&batch[i], &replies[i].msg_hdr);
      replies[i].msg_len = 0;
    }
    int sent = 0;
    while (sent < received) {
      int n = sendmmsg(socket_fd, replies + sent, (unsigned)(received - sent), 0);
      if (n < 0 && errno == EINTR) continue;
      sent += n > 0 ? n : 1; /* skip a reply that cannot be sent, as above */
    }
    count_served((unsigned long)received);
  }
}

int main(int argc, char **argv) {
  parse_options(argc, argv);
  log_fd = open_request_log(options.log_path);
  open_socket();
  switch (options.io) {
    case IO_RECVFROM: run_recvfrom(); break;
    case IO_RECVMSG: run_recvmsg(); break;
    case IO_RECVMMSG: run_recvmmsg(); break;
  }
  return MEMBER_EXIT_OK;
}
