// How control_fuzzer reads its input: up to kMaxSteps records, each with how
// to send it. make_seeds.py writes the same format (keep the two in step).
//
// The input is a sequence of steps, front to back (missing bytes read as 0):
//
//   byte     flags
//              bits 0-2  number of fds to attach (0..7)
//              bit 3     link: 0 = the first link, 1 = the second (each
//                        connected on first use). The second is another
//                        local user: it connects, and the step's fds are
//                        made, under effective uid kSecondPeerUid
//                        (control_fuzzer.cc)
//              bit 4     oversize: pad the record with zeros beyond
//                        RP_MAX_RECORD, so the kernel truncates it
//              bit 5     pipeline: do not wait for this record's replies before
//                        the next step (they are read at the end)
//              bit 6     traffic: after each sending, connect to (TCP) or send
//                        a datagram to (UDP) the group of the latest member reply
//              bit 7     send the record kRepeatCount times (with bit 5, enough
//                        unread replies to fill the link's queue)
//   u16 LE   record length L; 0xFFFF instead closes the step's link (after
//            reading its replies), which its next step connects afresh: a
//            member leaves while others stay
//   N bytes  one per fd: its kind, modulo kControlFdKindCount: 0..15 are the
//            kinds of fd_kinds.h; from the latest member reply, 16 is the
//            member's channel, 17 the group socket and 18 the channel_peer;
//            19 is one end of a new SOCK_SEQPACKET socketpair and 20 the other
//            end of the latest such pair (a channel the broker never made, for
//            REJOIN); 16-18 and 20 are /dev/null when there is none yet
//   L bytes  the record (fewer if the input ends first)
//
// Steps are read while input remains; a step may send an empty record. A
// TAKEOVER the broker would obey is not sent unless REUSEPORT_FUZZ_TAKEOVER=1
// (control_fuzzer.cc says why).
#ifndef REUSEPORT_TESTS_FUZZ_CONTROL_INPUT_H_
#define REUSEPORT_TESTS_FUZZ_CONTROL_INPUT_H_

#include <stddef.h>
#include <stdint.h>

#include <string>
#include <vector>

namespace reuseport::fuzz {

inline constexpr size_t kMaxSteps = 8;
inline constexpr int kControlFdKindCount = 21;
inline constexpr uint8_t kFdKindLatestChannel = 16;
inline constexpr uint8_t kFdKindLatestGroupSocket = 17;
inline constexpr uint8_t kFdKindLatestChannelPeer = 18;
inline constexpr uint8_t kFdKindNewPair = 19;
inline constexpr uint8_t kFdKindNewPairOtherEnd = 20;
inline constexpr uint16_t kCloseLinkLength = 0xFFFF;
inline constexpr int kRepeatCount = 64;
inline constexpr unsigned kSecondPeerUid = 4242;

struct ControlStep {
  int link = 0;  // 0 or 1
  bool oversize = false;
  bool pipeline = false;
  bool traffic = false;
  int repeat = 1;
  bool close_link = false;  // instead of sending anything
  std::vector<uint8_t> fd_kinds;  // each < kControlFdKindCount
  std::string record;
};

std::vector<ControlStep> ParseControlInput(const uint8_t* data, size_t size);

}  // namespace reuseport::fuzz

#endif  // REUSEPORT_TESTS_FUZZ_CONTROL_INPUT_H_
