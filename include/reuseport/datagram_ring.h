/* A UDP member's datagram ring: shared memory the broker writes and the
 * member's processes read, so that a member receives a datagram without a
 * system call. Plain C, shared by the broker (producer) and the shim
 * (consumers); part of the contract with protocol.h.
 *
 * Memory: a file the broker creates in its socket directory and unlinks at
 * once, RP_RING_HEADER_SIZE bytes of struct rp_ring_header, then data_size
 * bytes of records. Its fd travels with the member's channel (BIND and ATTACH
 * replies, REJOIN requests), so every process of the member maps the same
 * pages and a restarted broker takes the ring over with what it holds.
 *
 * Records, 8-byte aligned, at byte offsets taken modulo data_size:
 *
 *     struct rp_ring_record | datagram bytes (data_length) | padding to 8
 *
 * A record never wraps: where one would not fit before the end, the producer
 * writes a pad record (kind RP_RING_PAD) to the end and starts at 0.
 *
 * Cursors are 64-bit byte counts that only grow: head (written by the one
 * producer; what is published), claim (what consumers have taken). Free space
 * is data_size - (head - claim).
 *
 * Taking a record, for any number of consumers (a prefork server's workers
 * share one member): read it at claim, copy it out, then move claim past it
 * with a compare-and-swap. A failed CAS means another consumer took it first:
 * the copy is dropped and the next record tried. The producer overwrites only
 * what lies behind claim, so a record whose CAS succeeds was whole when
 * copied. Nobody ever waits for another process: a consumer killed mid-copy
 * leaves the record to the others.
 *
 * Doorbell: the member's channel stays the fd the program polls, and holds
 * an RP_OP_DOORBELL record while datagrams wait, so poll/select/epoll,
 * O_NONBLOCK, blocking and SO_RCVTIMEO behave as on a socket. `pending`
 * counts published datagram records not yet taken; its atomic updates order
 * the producer's rings against the consumers' read-outs:
 *   producer: write records, publish head, add the count to pending; ring
 *     (send one doorbell) when pending was <= 0 or the ring was empty before
 *     this batch;
 *   consumer: take a record (CAS on claim), subtract 1 from pending; when
 *     that brought it to 0 and the ring is empty, read one doorbell out.
 * Anyone can die between two of those steps (a SIGKILLed worker, a broker
 * restart), so the count is a hint that heals: a consumer that finds the
 * ring empty and a doorbell waiting drops it when pending <= 0 (stale), and
 * when pending stays > 0 for RP_RING_STUCK_NS with nothing to take, resets
 * it to 0 (a consumer died between its two steps); the producer's "was
 * empty" ring re-arms a ring whose count was left too high. A broker that
 * takes a ring over recounts pending and rings when records wait. What
 * healing costs is a spurious wake-up, never a datagram.
 *
 * Trust: the broker treats the ring as written by the member (it is), checks
 * cursors and lengths before using them, and never lets one member's ring
 * reach another's memory.
 */
#ifndef REUSEPORT_DATAGRAM_RING_H
#define REUSEPORT_DATAGRAM_RING_H

#include <stdint.h>
#include <string.h>

#include "reuseport/protocol.h"

#define RP_RING_MAGIC 0x474e4952u /* "RING" */
#define RP_RING_VERSION 1u
#define RP_RING_HEADER_SIZE 256u
/* How long pending may stay above 0 with nothing to take before a consumer
 * decides its count was left behind by a dead process. */
#define RP_RING_STUCK_NS 20000000ll

enum rp_ring_kind { RP_RING_DATAGRAM = 1, RP_RING_PAD = 2 };

struct rp_ring_header {
  uint32_t magic;      /* RP_RING_MAGIC */
  uint32_t version;    /* RP_RING_VERSION */
  uint64_t data_size;  /* bytes of records after the header; a multiple of 8 */
  uint8_t reserved0[48];
  uint64_t head; /* producer only: bytes published */
  uint8_t reserved1[56];
  uint64_t claim; /* consumers: bytes taken */
  uint8_t reserved2[56];
  int64_t pending; /* datagram records published and not taken */
  uint8_t reserved3[56];
};

struct rp_ring_record {
  uint32_t length; /* of the whole record with its padding; multiple of 8 */
  uint32_t kind;   /* enum rp_ring_kind */
  struct rp_datagram datagram;
  uint32_t data_length;
  uint32_t reserved;
};

RP_STATIC_ASSERT(sizeof(struct rp_ring_header) == RP_RING_HEADER_SIZE, "rp_ring_header size");
RP_STATIC_ASSERT(sizeof(struct rp_ring_record) == 80, "rp_ring_record size");

/* A mapped ring. */
struct rp_ring {
  struct rp_ring_header* header;
  uint8_t* data;
  uint64_t data_size;
};

static inline uint32_t rp_ring_record_size(uint32_t data_length) {
  return (uint32_t)((sizeof(struct rp_ring_record) + (uint64_t)data_length + 7u) & ~(uint64_t)7u);
}

/* Attaches to memory of `size` bytes (the whole mapping). 0, or -1 when it is
 * not a ring of this version or does not fit. */
static inline int rp_ring_attach(struct rp_ring* ring, void* memory, uint64_t size) {
  struct rp_ring_header* h = (struct rp_ring_header*)memory;
  if (size < RP_RING_HEADER_SIZE + 4096u || h->magic != RP_RING_MAGIC || h->version != RP_RING_VERSION) return -1;
  uint64_t data_size = h->data_size;
  if (data_size == 0 || data_size % 8 != 0 || data_size > size - RP_RING_HEADER_SIZE) return -1;
  ring->header = h;
  ring->data = (uint8_t*)memory + RP_RING_HEADER_SIZE;
  ring->data_size = data_size;
  return 0;
}

/* Formats fresh memory (the broker, before anyone maps it). */
static inline void rp_ring_format(void* memory, uint64_t size) {
  struct rp_ring_header* h = (struct rp_ring_header*)memory;
  memset(h, 0, sizeof(*h));
  h->magic = RP_RING_MAGIC;
  h->version = RP_RING_VERSION;
  h->data_size = (size - RP_RING_HEADER_SIZE) & ~(uint64_t)7u;
}

/* ---- producer (the broker) ---- */

/* The claim cursor as the producer may trust it: -1 when a consumer has made
 * it impossible (behind what the ring can hold, or ahead of head). */
static inline int rp_ring_claim_checked(const struct rp_ring* ring, uint64_t head, uint64_t* claim) {
  uint64_t c = __atomic_load_n(&ring->header->claim, __ATOMIC_ACQUIRE);
  if (c > head || head - c > ring->data_size) return -1;
  *claim = c;
  return 0;
}

/* Writes one record at *head (not yet published) and moves *head past it.
 * 0; -1 when it does not fit (the datagram is dropped, as a full socket
 * buffer drops it); -2 when the ring is corrupt. */
static inline int rp_ring_write(struct rp_ring* ring, uint64_t* head, const struct rp_datagram* d, const void* bytes,
                                uint32_t length) {
  uint64_t claim;
  if (rp_ring_claim_checked(ring, *head, &claim) != 0) return -2;
  uint32_t need = rp_ring_record_size(length);
  uint64_t pos = *head % ring->data_size;
  uint64_t contiguous = ring->data_size - pos;
  uint64_t total = contiguous < need ? contiguous + need : need;
  if (need > ring->data_size || ring->data_size - (*head - claim) < total) return -1;
  if (contiguous < need) {
    struct rp_ring_record pad;
    memset(&pad, 0, sizeof(pad));
    pad.length = (uint32_t)contiguous;
    pad.kind = RP_RING_PAD;
    memcpy(ring->data + pos, &pad, contiguous < sizeof(pad) ? 8 : sizeof(pad));
    *head += contiguous;
    pos = 0;
  }
  struct rp_ring_record r;
  memset(&r, 0, sizeof(r));
  r.length = need;
  r.kind = RP_RING_DATAGRAM;
  r.datagram = *d;
  r.data_length = length;
  memcpy(ring->data + pos, &r, sizeof(r));
  if (length > 0) memcpy(ring->data + pos + sizeof(r), bytes, length);
  *head += need;
  return 0;
}

/* True when everything up to `head` (the producer's published cursor) has
 * been taken; checked before a batch is written. */
static inline int rp_ring_taken_up_to(const struct rp_ring* ring, uint64_t head) {
  return __atomic_load_n(&ring->header->claim, __ATOMIC_ACQUIRE) == head;
}

static inline void rp_ring_publish(struct rp_ring* ring, uint64_t head) {
  __atomic_store_n(&ring->header->head, head, __ATOMIC_RELEASE);
}

/* Counts `records` just published as pending: 1 when pending was <= 0 (ring
 * the doorbell; see above for the other reason to ring). */
static inline int rp_ring_add_pending(struct rp_ring* ring, int64_t records) {
  return __atomic_fetch_add(&ring->header->pending, records, __ATOMIC_ACQ_REL) <= 0;
}

/* ---- consumers (the shim; the broker too, to hand a departed member's
 * records to the others) ---- */

/* What rp_ring_next found. */
enum rp_ring_next_result { RP_RING_EMPTY = 0, RP_RING_READY = 1, RP_RING_CORRUPT = -1 };

/* The next datagram, not yet taken: its record, where its bytes are, and the
 * claim cursor it sits at (for rp_ring_commit). Pad records on the way are
 * taken here. The bytes may be overwritten once another consumer takes the
 * record: copy them out, then commit (or, to peek, check rp_ring_still_at). */
static inline int rp_ring_next(struct rp_ring* ring, struct rp_ring_record* record, const uint8_t** bytes,
                               uint64_t* at) {
  for (int attempt = 0; attempt < 1000000; ++attempt) {
    uint64_t claim = __atomic_load_n(&ring->header->claim, __ATOMIC_ACQUIRE);
    uint64_t head = __atomic_load_n(&ring->header->head, __ATOMIC_ACQUIRE);
    if (claim == head) return RP_RING_EMPTY;
    if (claim > head || head - claim > ring->data_size || claim % 8 != 0) return RP_RING_CORRUPT;
    uint64_t pos = claim % ring->data_size;
    uint64_t contiguous = ring->data_size - pos;
    struct rp_ring_record r;
    memset(&r, 0, sizeof(r));
    memcpy(&r, ring->data + pos, contiguous < sizeof(r) ? 8 : sizeof(r));
    int valid = r.length >= 8 && r.length % 8 == 0 && r.length <= contiguous && r.length <= head - claim;
    if (valid && r.kind == RP_RING_DATAGRAM) {
      valid = contiguous >= sizeof(r) && rp_ring_record_size(r.data_length) == r.length;
    } else if (valid) {
      valid = r.kind == RP_RING_PAD;
    }
    if (!valid) {
      /* Torn (another consumer took it and the producer reused the space),
       * or corrupt: corrupt only if claim did not move meanwhile. */
      if (__atomic_load_n(&ring->header->claim, __ATOMIC_ACQUIRE) == claim) return RP_RING_CORRUPT;
      continue;
    }
    if (r.kind == RP_RING_PAD) {
      uint64_t expected = claim;
      __atomic_compare_exchange_n(&ring->header->claim, &expected, claim + r.length, 0, __ATOMIC_ACQ_REL,
                                  __ATOMIC_ACQUIRE);
      continue;
    }
    *record = r;
    *bytes = ring->data + pos + sizeof(r);
    *at = claim;
    return RP_RING_READY;
  }
  return RP_RING_CORRUPT;
}

/* True while the record found at `at` has not been taken by anyone. */
static inline int rp_ring_still_at(const struct rp_ring* ring, uint64_t at) {
  return __atomic_load_n(&ring->header->claim, __ATOMIC_ACQUIRE) == at;
}

/* Takes the record found at `at` (after copying it out). 1 when taken, with
 * *doorbell set when this take brought pending to 0 and left the ring empty
 * (the caller reads one doorbell out of the channel); 0 when another consumer
 * took it first (the copy is worthless: call rp_ring_next again). */
static inline int rp_ring_commit(struct rp_ring* ring, uint64_t at, const struct rp_ring_record* record,
                                 int* doorbell) {
  uint64_t expected = at;
  *doorbell = 0;
  if (!__atomic_compare_exchange_n(&ring->header->claim, &expected, at + record->length, 0, __ATOMIC_ACQ_REL,
                                   __ATOMIC_ACQUIRE)) {
    return 0;
  }
  *doorbell = __atomic_fetch_sub(&ring->header->pending, 1, __ATOMIC_ACQ_REL) == 1 &&
              __atomic_load_n(&ring->header->head, __ATOMIC_ACQUIRE) == at + record->length;
  return 1;
}

static inline int64_t rp_ring_pending(const struct rp_ring* ring) {
  return __atomic_load_n(&ring->header->pending, __ATOMIC_ACQUIRE);
}

/* Resets a count found stuck at `seen` (see RP_RING_STUCK_NS); 1 when this
 * call did it. */
static inline int rp_ring_reset_pending(struct rp_ring* ring, int64_t seen) {
  return __atomic_compare_exchange_n(&ring->header->pending, &seen, 0, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/* Datagram records between claim and head (a broker taking a ring over
 * recounts pending with it); -1 when the cursors or records are broken. */
static inline int64_t rp_ring_count_records(const struct rp_ring* ring) {
  uint64_t claim = __atomic_load_n(&ring->header->claim, __ATOMIC_ACQUIRE);
  uint64_t head = __atomic_load_n(&ring->header->head, __ATOMIC_ACQUIRE);
  if (claim > head || head - claim > ring->data_size || claim % 8 != 0) return -1;
  int64_t count = 0;
  while (claim < head) {
    uint64_t pos = claim % ring->data_size;
    uint64_t contiguous = ring->data_size - pos;
    struct rp_ring_record r;
    memset(&r, 0, sizeof(r));
    memcpy(&r, ring->data + pos, contiguous < sizeof(r) ? 8 : sizeof(r));
    if (r.length < 8 || r.length % 8 != 0 || r.length > contiguous || r.length > head - claim) return -1;
    if (r.kind == RP_RING_DATAGRAM) ++count;
    claim += r.length;
  }
  return count;
}

#endif /* REUSEPORT_DATAGRAM_RING_H */
