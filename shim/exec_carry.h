// A member's private ends across exec.
//
// Each process that holds a member keeps private copies of the broker's end of
// the member's channel, of the group's real socket and of the datagram ring:
// they keep the channel and the port alive while the broker is down, and prove
// membership to the next broker (REJOIN). They are close-on-exec, so a new
// image that finds the broker up gets fresh copies with ATTACH. But a program
// that execs while the broker is down (a self-re-executing master reloading,
// a binary upgrade during a broker restart) would lose them, and with them the
// member: nobody could prove the channel, and the port closed. So while a
// member's fd passes on to the new image, its private ends go along, and
// REUSEPORT_CARRY tells the new image which is which:
//
//   REUSEPORT_CARRY=channel,peer,group,ring,protocol,v6only,listening,backlog,member_key,bound;...
//
// (fd numbers in decimal, ring -1 for none, bound the member's rp_address in
// hex). The new image takes the variable out of its environment at start and
// shields the fds from the program. When ATTACH works it closes them; when no
// broker answers it makes the member from them, and the link watcher rejoins
// the next broker as for any other process.
#ifndef REUSEPORT_SHIM_EXEC_CARRY_H_
#define REUSEPORT_SHIM_EXEC_CARRY_H_

#include <stddef.h>
#include <stdint.h>

#include "reuseport/protocol.h"

namespace reuseport::shim {

struct CarriedMember {
  int channel;  // the program's fd
  int peer;     // the broker's end of the channel
  int group;    // the group's real socket
  int ring;     // the datagram ring, or -1
  uint8_t protocol;
  uint8_t v6only;
  uint8_t listening;
  int backlog;
  uint64_t member_key;
  struct rp_address bound;
};

// Before an exec: private ends of members whose program fd passes on lose
// FD_CLOEXEC, and `entry` gets "REUSEPORT_CARRY=..." for them. False (nothing
// changed) when there is nothing to carry or `cap` is too small for the first.
// Takes TableLock.
bool PrepareCarry(char* entry, size_t cap);
// After an exec that failed: FD_CLOEXEC back on what PrepareCarry took off.
void UndoCarry();
// True for "REUSEPORT_CARRY=..." (an entry the exec hook replaces).
bool IsCarryEntry(const char* entry);

// At start: reads and removes REUSEPORT_CARRY, checks the fds are what it
// says (sockets of the right kinds, a regular file for the ring) and shields
// them. No allocation beyond the shim's tables.
void LoadCarried();
// True for a carried private end (not a candidate channel of the program's).
bool IsCarriedEnd(int fd);
// The carried ends of the program's fd `channel`, handed to the caller (no
// longer shielded: the caller adopts or closes them). False if none.
bool TakeCarried(int channel, CarriedMember* out);
// Closes the carried ends of `channel`, if any (ATTACH gave fresh copies).
void CloseCarried(int channel);
// The program moved a shielded end (dup2 onto its number): follow it.
void CarriedEndMoved(int old_fd, int new_fd);

}  // namespace reuseport::shim

#endif  // REUSEPORT_SHIM_EXEC_CARRY_H_
