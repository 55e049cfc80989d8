/* reuseport wire protocol: the one contract between libreuseport.so (the shim),
 * reuseportd (the broker) and reuseportctl.
 *
 * Plain C so that any client can include it; fixed-width integers only, because a
 * 32-bit program may talk to a 64-bit broker. Every size is checked below.
 *
 * Sockets
 *   control socket   AF_UNIX SOCK_SEQPACKET, listened on by the broker at
 *                    REUSEPORT_SOCKET (default RP_DEFAULT_SOCKET).
 *   link             one connection to the control socket per member socket and
 *                    process. Requests go up it and replies come back; the broker
 *                    reads SO_PEERCRED from it. A member stays in its group while
 *                    any process holds one of its links open.
 *   channel          a socketpair made by the broker for each member. The member's
 *                    end replaces the program's socket under the same fd number, so
 *                    poll/select/epoll see it readable exactly when a connection or
 *                    datagram is queued. The broker keeps a duplicate of the member's
 *                    end: when the member goes, what it has not consumed is still in
 *                    that queue and goes to the other members. The member keeps a
 *                    duplicate of the broker's end, so a broker restart does not
 *                    close the channel under the program.
 *
 * Framing
 *   One SOCK_SEQPACKET record is one message, so framing cannot drift:
 *
 *     struct rp_header | payload (header.payload_size bytes) | trailing data
 *
 *   payload is the fixed struct of the opcode (its exact size is required);
 *   trailing data is whatever the record holds after it (datagram bytes, status
 *   text). File descriptors travel as one SCM_RIGHTS control message, in the
 *   order each opcode lists.
 *
 * Requests and replies
 *   A reply repeats the request's opcode and request_id, sets RP_FLAG_REPLY and
 *   carries status 0 or a positive errno value. An unknown opcode gets
 *   EOPNOTSUPP, an unknown version EPROTONOSUPPORT (with the broker's version in
 *   the reply header), a malformed message EBADMSG; none of them closes the link
 *   or stops the broker serving anyone else. Replies longer than one record
 *   (status) come as several records, all but the last flagged RP_FLAG_MORE.
 *
 * Byte order: host order for all integers except address bytes (network order,
 * as in struct sockaddr); peers are always on the same host.
 */
#ifndef REUSEPORT_PROTOCOL_H
#define REUSEPORT_PROTOCOL_H

#include <stdint.h>
#include <unistd.h>

#define RP_MAGIC 0x31505052u /* "RPP1" in memory on little-endian hosts */
#define RP_VERSION 1u
#define RP_DEFAULT_SOCKET "/run/reuseport/reuseportd.sock"
/* Systems without /run (RHEL 6, SLES 11 and others older than 2011) keep
 * runtime files in /var/run only; where /run exists, /var/run links to it. */
#define RP_DEFAULT_SOCKET_VAR_RUN "/var/run/reuseport/reuseportd.sock"

/* Largest record either side sends or accepts: a 65,535-byte datagram plus its
 * header and metadata fits. */
#define RP_MAX_RECORD (65536u + 256u)
/* Largest number of fds any message carries. */
#define RP_MAX_FDS 4u

enum rp_opcode {
  /* Link requests (member or reuseportctl to broker). */
  RP_OP_BIND = 1,   /* payload rp_bind_request, fds [socket];
                       reply rp_member_reply, fds [channel, channel_peer, group socket,
                       and for UDP with RP_MEMBER_RING: the datagram ring (datagram_ring.h)] */
  RP_OP_LISTEN = 2, /* payload rp_listen_request, no fds; reply no payload */
  RP_OP_ATTACH = 3, /* payload none, fds [channel]: attach this link to the member
                       that owns the channel (a forked or exec'd holder);
                       reply rp_member_reply, fds [channel_peer, group socket, ring if RP_MEMBER_RING] */
  RP_OP_REJOIN = 4, /* payload rp_rejoin_request, fds [channel, channel_peer, group socket, ring if
                       the member has one]: re-register a member after a broker restart;
                       reply rp_member_reply (RP_MEMBER_RING: the broker writes into that ring) */
  RP_OP_TAKEOVER = 5, /* payload none, no fds: a successor broker (same uid, or root)
                         has taken the control socket's path; the broker answers 0
                         and exits, leaving every member and group socket to it */
  RP_OP_STATUS = 16, /* payload rp_status_request; reply: text in trailing data, chunked */

  /* Channel messages (broker to member), never replied to. */
  RP_OP_CONNECTION = 32, /* payload rp_connection, fds [accepted socket] */
  RP_OP_DATAGRAM = 33,   /* payload rp_datagram, trailing data = the datagram */
  /* The broker's proof that a client holds a member's end of a channel (ATTACH,
     REJOIN): it sends this record, with a fresh nonce, into the end the client
     passed, and the record must come out of the channel's other end, which only
     the broker and that member's processes hold. It travels member end to
     broker end, a direction nothing else uses; a program never sees it, and a
     receiver that meets one ignores it. payload rp_channel_proof, no fds. */
  RP_OP_CHANNEL_PROOF = 48,
  /* A UDP member with a ring: datagrams are waiting in it (datagram_ring.h
     says when this record is sent and who reads it out). Header only. */
  RP_OP_DOORBELL = 49
};

enum rp_flag {
  RP_FLAG_REPLY = 1u << 0,
  RP_FLAG_MORE = 1u << 1
};

enum rp_protocol { RP_PROTO_TCP = 6, RP_PROTO_UDP = 17 };

struct rp_header {
  uint32_t magic;        /* RP_MAGIC */
  uint16_t version;      /* RP_VERSION */
  uint16_t header_size;  /* sizeof(struct rp_header) */
  uint16_t opcode;       /* enum rp_opcode */
  uint16_t flags;        /* enum rp_flag */
  uint32_t payload_size; /* size of the opcode's payload struct */
  uint64_t request_id;   /* chosen by the requester, echoed in the reply */
  int32_t status;        /* replies: 0 or a positive errno value; requests: 0 */
  uint32_t reserved;     /* 0 */
};

/* A request header: every fixed field set, flags and status 0. */
static inline struct rp_header rp_request_header(uint16_t opcode, uint32_t payload_size, uint64_t request_id) {
  struct rp_header h = {RP_MAGIC, RP_VERSION, sizeof(struct rp_header), opcode, 0, payload_size, request_id, 0, 0};
  return h;
}

/* An IPv4 or IPv6 socket address. family is AF_INET (2) or AF_INET6 (10). */
struct rp_address {
  uint16_t family;
  uint16_t port; /* host order */
  uint32_t flowinfo;
  uint32_t scope_id;
  uint8_t addr[16]; /* IPv4 in the first 4 bytes */
};

struct rp_bind_request {
  struct rp_address address; /* as passed to bind() */
  uint8_t protocol;          /* enum rp_protocol */
  uint8_t v6only;            /* IPV6_V6ONLY of the socket (AF_INET6 only) */
  uint16_t reserved;
  uint32_t reserved2;
};

enum rp_member_flag {
  RP_MEMBER_RING = 1u << 0 /* UDP: datagrams come through the ring, not as channel records */
};

struct rp_member_reply {
  struct rp_address bound; /* the group's address, with the port resolved */
  uint8_t protocol;
  uint8_t v6only;
  uint8_t listening; /* the member has called listen() (ATTACH, REJOIN) */
  uint8_t flags;     /* enum rp_member_flag */
  uint64_t group_id;
  uint64_t member_id;
};

struct rp_listen_request {
  int32_t backlog;
  uint32_t reserved;
};

struct rp_rejoin_request {
  struct rp_address bound;
  uint8_t protocol;
  uint8_t v6only;
  uint8_t listening;
  uint8_t reserved;
  int32_t backlog;
  uint32_t reserved2;
  uint64_t member_key; /* the member's id under the previous broker, for logs */
};

enum rp_status_format {
  RP_STATUS_TEXT = 0,
  RP_STATUS_JSON = 1,
  RP_STATUS_PROMETHEUS = 2
};

struct rp_status_request {
  uint32_t format; /* enum rp_status_format */
  uint32_t reserved;
};

enum rp_connection_flag {
  /* The accepted socket is of the other family than the member's listener
     (the group is served by a real socket of the other family): the member
     presents it in its own (shim/presented_family.h). */
  RP_CONNECTION_OTHER_FAMILY = 1u << 0
};

struct rp_connection {
  struct rp_address peer; /* as accept() reported it */
  uint32_t flags;         /* enum rp_connection_flag; 0 from brokers before the flag */
  uint64_t sequence;      /* per member, for logs */
};

struct rp_channel_proof {
  uint64_t nonce[2];
};

enum rp_datagram_flag {
  RP_DATAGRAM_HAS_DESTINATION = 1u << 0 /* destination and ifindex are valid */
};

struct rp_datagram {
  struct rp_address source;
  struct rp_address destination; /* the local address it was sent to (pktinfo) */
  uint32_t ifindex;              /* the interface it arrived on (pktinfo) */
  uint32_t flags;                /* enum rp_datagram_flag */
};

/* One list of size checks for C and C++. */
#ifdef __cplusplus
#define RP_STATIC_ASSERT(cond, what) static_assert(cond, what)
#else
#define RP_STATIC_ASSERT(cond, what) _Static_assert(cond, what)
#endif
RP_STATIC_ASSERT(sizeof(struct rp_header) == 32, "rp_header size is part of the protocol");
RP_STATIC_ASSERT(sizeof(struct rp_address) == 28, "rp_address size is part of the protocol");
RP_STATIC_ASSERT(sizeof(struct rp_bind_request) == 36, "rp_bind_request size");
RP_STATIC_ASSERT(sizeof(struct rp_member_reply) == 48, "rp_member_reply size");
RP_STATIC_ASSERT(sizeof(struct rp_listen_request) == 8, "rp_listen_request size");
RP_STATIC_ASSERT(sizeof(struct rp_rejoin_request) == 48, "rp_rejoin_request size");
RP_STATIC_ASSERT(sizeof(struct rp_status_request) == 8, "rp_status_request size");
RP_STATIC_ASSERT(sizeof(struct rp_connection) == 40, "rp_connection size");
RP_STATIC_ASSERT(sizeof(struct rp_datagram) == 64, "rp_datagram size");
RP_STATIC_ASSERT(sizeof(struct rp_channel_proof) == 16, "rp_channel_proof size");

/* The control socket the broker, the shim and the tools use when none is
 * given (--socket, REUSEPORT_SOCKET): RP_DEFAULT_SOCKET where /run exists,
 * else RP_DEFAULT_SOCKET_VAR_RUN. */
static inline const char *rp_default_socket(void) {
  return access("/run", F_OK) == 0 ? RP_DEFAULT_SOCKET : RP_DEFAULT_SOCKET_VAR_RUN;
}

#endif /* REUSEPORT_PROTOCOL_H */
