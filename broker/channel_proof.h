// Proof that a client holds a member's end of a channel.
//
// ATTACH and REJOIN present a channel end as the proof of membership. Looking
// the member up by the end's inode number is not proof: any user can read
// socket inode numbers in /proc/net/unix, and the 32-bit counter behind them
// wraps (in hours on a busy host), so a client's own socket can carry another
// member's number. Kernels before 3.5 have no kcmp() to compare two files.
//
// So the broker asks the kernel: it sends a record with a fresh nonce
// (RP_OP_CHANNEL_PROOF) into the end the client passed, and reads it back
// from the end it knows is the channel's other one. The record comes out
// there only if the passed end is connected to it, which only the member's
// processes can arrange. That direction (member end to broker end) carries
// nothing else, so the record neither meets nor disturbs traffic.
//
// Thread-safety: none; call from the broker's event loop.
#ifndef REUSEPORT_BROKER_CHANNEL_PROOF_H_
#define REUSEPORT_BROKER_CHANNEL_PROOF_H_

namespace reuseport::broker {

// True when `claimed_member_end` is the peer of `broker_end` (both
// SOCK_SEQPACKET). Never blocks; anything else queued at `broker_end`
// (which no honest member writes) is read and dropped.
bool ProvesChannel(int claimed_member_end, int broker_end);

// True when fd is an AF_UNIX SOCK_SEQPACKET socket, the only kind a channel is.
bool IsChannelSocket(int fd);

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_CHANNEL_PROOF_H_
