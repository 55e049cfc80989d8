#include "control_input.h"

#include "byte_reader.h"

namespace reuseport::fuzz {

std::vector<ControlStep> ParseControlInput(const uint8_t* data, size_t size) {
  ByteReader in(data, size);
  std::vector<ControlStep> steps;
  while (steps.size() < kMaxSteps && !in.empty()) {
    ControlStep step;
    uint8_t flags = in.Byte();
    int fd_count = flags & 7;
    step.link = (flags >> 3) & 1;
    step.oversize = (flags & (1 << 4)) != 0;
    step.pipeline = (flags & (1 << 5)) != 0;
    step.traffic = (flags & (1 << 6)) != 0;
    step.repeat = (flags & (1 << 7)) ? kRepeatCount : 1;
    uint16_t length = in.U16();
    if (length == kCloseLinkLength) {
      step.close_link = true;
      steps.push_back(std::move(step));
      continue;
    }
    for (int i = 0; i < fd_count; ++i) step.fd_kinds.push_back(in.Byte() % kControlFdKindCount);
    step.record = in.Bytes(length);
    steps.push_back(std::move(step));
  }
  return steps;
}

}  // namespace reuseport::fuzz
