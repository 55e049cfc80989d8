// How control_fuzzer reads its input: up to kMaxSteps records, each with how
// to send it. make_seeds.py writes the same format (keep the two in step).
//
// The input is a sequence of steps, front to back (missing bytes read as 0):
//
//   byte     flags
//              bits 0-2  number of fds to attach (0..7)
//              bit 3     link: 0 = the first link, 1 = the second (each
//                        connected on first use)
//              bit 4     oversize: pad the record with zeros beyond
//                        RP_MAX_RECORD, so the kernel truncates it
//              bit 5     pipeline: do not wait for this record's replies before
//                        the next step (they are read at the end)
//              bit 6     traffic: afterwards, connect to (TCP) or send a
//                        datagram to (UDP) the group of the latest member reply
//              bit 7     send the record 4 times
//   u16 LE   record length L
//   N bytes  one per fd: its kind, modulo kControlFdKindCount (0..15 are the
//            kinds of fd_kinds.h; 16 is the member channel and 17 the group
//            socket of the latest member reply, /dev/null before any)
//   L bytes  the record (fewer if the input ends first)
//
// Steps are read while input remains; a step may send an empty record.
#ifndef REUSEPORT_TESTS_FUZZ_CONTROL_INPUT_H_
#define REUSEPORT_TESTS_FUZZ_CONTROL_INPUT_H_

#include <stddef.h>
#include <stdint.h>

#include <string>
#include <vector>

namespace reuseport::fuzz {

inline constexpr size_t kMaxSteps = 8;
inline constexpr int kControlFdKindCount = 18;
inline constexpr uint8_t kFdKindLatestChannel = 16;
inline constexpr uint8_t kFdKindLatestGroupSocket = 17;

struct ControlStep {
  int link = 0;  // 0 or 1
  bool oversize = false;
  bool pipeline = false;
  bool traffic = false;
  int repeat = 1;
  std::vector<uint8_t> fd_kinds;  // each < kControlFdKindCount
  std::string record;
};

std::vector<ControlStep> ParseControlInput(const uint8_t* data, size_t size);

}  // namespace reuseport::fuzz

#endif  // REUSEPORT_TESTS_FUZZ_CONTROL_INPUT_H_
