// A UDP member's datagram ring in the shim: mapping the one the broker hands
// over (BIND and ATTACH replies), and taking datagrams out of it
// (include/reuseport/datagram_ring.h has the protocol).
//
// A ring is never unmapped while its member might still be read by another
// thread of the program (a close() racing a recvfrom() on the same fd): a
// released member's ring is replaced in place by zero pages, which read as an
// empty ring, and its file's memory goes back to the system.
#ifndef REUSEPORT_SHIM_MEMBER_RING_H_
#define REUSEPORT_SHIM_MEMBER_RING_H_

#include "member_table.h"

namespace reuseport::shim {

// Maps the ring behind `fd` (the reply's fd, which this takes) for m.
// Requires TableLock. False when it is not a ring: m goes on without one.
bool AdoptRing(Member* m, int fd);

// Stops using m's ring (released member, or a broker that does not write it).
// Requires TableLock.
void DropRing(Member* m);

inline bool HasRing(const Member* m) { return m->ring.header != nullptr; }

}  // namespace reuseport::shim

#endif  // REUSEPORT_SHIM_MEMBER_RING_H_
