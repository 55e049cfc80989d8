// Reads a fuzzer input front to back. Reading past the end yields zeros, so
// every input, however short, decodes to something (libFuzzer's own
// FuzzedDataProvider takes integers from the back, which makes hand-written
// seeds awkward; this order is the one make_seeds.py writes).
#ifndef REUSEPORT_TESTS_FUZZ_BYTE_READER_H_
#define REUSEPORT_TESTS_FUZZ_BYTE_READER_H_

#include <stddef.h>
#include <stdint.h>

#include <algorithm>
#include <string>

namespace reuseport::fuzz {

class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  bool empty() const { return offset_ >= size_; }

  uint8_t Byte() { return empty() ? 0 : data_[offset_++]; }

  uint16_t U16() {  // little-endian
    uint16_t lo = Byte();
    uint16_t hi = Byte();
    return static_cast<uint16_t>(lo | (hi << 8));
  }

  // Up to `n` bytes: fewer when the input ends first.
  std::string Bytes(size_t n) {
    size_t take = std::min(n, size_ - std::min(offset_, size_));
    std::string out(reinterpret_cast<const char*>(data_ + offset_), take);
    offset_ += take;
    return out;
  }

  std::string Rest() { return Bytes(size_); }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t offset_ = 0;
};

}  // namespace reuseport::fuzz

#endif  // REUSEPORT_TESTS_FUZZ_BYTE_READER_H_
