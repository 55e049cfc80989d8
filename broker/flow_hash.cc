#include "flow_hash.h"

#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

namespace reuseport::broker {

namespace {

inline uint64_t Rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

inline void SipRound(uint64_t& v0, uint64_t& v1, uint64_t& v2, uint64_t& v3) {
  v0 += v1;
  v1 = Rotl(v1, 13);
  v1 ^= v0;
  v0 = Rotl(v0, 32);
  v2 += v3;
  v3 = Rotl(v3, 16);
  v3 ^= v2;
  v0 += v3;
  v3 = Rotl(v3, 21);
  v3 ^= v0;
  v2 += v1;
  v1 = Rotl(v1, 17);
  v1 ^= v2;
  v2 = Rotl(v2, 32);
}

}  // namespace

FlowKey RandomFlowKey() {
  FlowKey key;
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    uint64_t words[2];
    if (read(fd, words, sizeof(words)) == static_cast<ssize_t>(sizeof(words))) {
      key.k0 = words[0];
      key.k1 = words[1];
    }
    close(fd);
  }
  if (key.k0 == 0 && key.k1 == 0) {  // no /dev/urandom: still vary per start
    struct timespec ts {};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    key.k0 = static_cast<uint64_t>(ts.tv_nsec) * 0x9e3779b97f4a7c15ULL ^ static_cast<uint64_t>(getpid());
    key.k1 = static_cast<uint64_t>(ts.tv_sec) * 0xc2b2ae3d27d4eb4fULL;
  }
  return key;
}

uint64_t SipHash(const FlowKey& key, const void* data, size_t size, int c_rounds, int d_rounds) {
  uint64_t v0 = 0x736f6d6570736575ULL ^ key.k0;
  uint64_t v1 = 0x646f72616e646f6dULL ^ key.k1;
  uint64_t v2 = 0x6c7967656e657261ULL ^ key.k0;
  uint64_t v3 = 0x7465646279746573ULL ^ key.k1;
  const uint8_t* p = static_cast<const uint8_t*>(data);
  size_t full = size / 8 * 8;
  for (size_t i = 0; i < full; i += 8) {
    uint64_t m;
    memcpy(&m, p + i, 8);
    v3 ^= m;
    for (int r = 0; r < c_rounds; ++r) SipRound(v0, v1, v2, v3);
    v0 ^= m;
  }
  uint64_t last = static_cast<uint64_t>(size) << 56;
  for (size_t i = 0; i < size - full; ++i) last |= static_cast<uint64_t>(p[full + i]) << (8 * i);
  v3 ^= last;
  for (int r = 0; r < c_rounds; ++r) SipRound(v0, v1, v2, v3);
  v0 ^= last;
  v2 ^= 0xff;
  for (int r = 0; r < d_rounds; ++r) SipRound(v0, v1, v2, v3);
  return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t FlowHash(const FlowKey& key, const rp_address& source, const rp_address& destination) {
  // IPv4 as ::ffff:a.b.c.d so a flow hashes alike through v4 and dual-stack sockets.
  uint8_t bytes[36];
  auto put = [&](size_t at, const rp_address& a) {
    if (a.family == 2 /* AF_INET */) {
      memset(bytes + at, 0, 10);
      bytes[at + 10] = 0xff;
      bytes[at + 11] = 0xff;
      memcpy(bytes + at + 12, a.addr, 4);
    } else {
      memcpy(bytes + at, a.addr, 16);
    }
    bytes[at + 16] = static_cast<uint8_t>(a.port >> 8);
    bytes[at + 17] = static_cast<uint8_t>(a.port);
  };
  put(0, source);
  put(18, destination);
  return SipHash13(key, bytes, sizeof(bytes));
}

}  // namespace reuseport::broker
