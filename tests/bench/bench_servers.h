// The server side of the benchmark: worker processes that accept or receive
// as fast as they can and report how much they handled when told to stop.
#ifndef REUSEPORT_TESTS_BENCH_BENCH_SERVERS_H_
#define REUSEPORT_TESTS_BENCH_BENCH_SERVERS_H_

#include <cstdint>

namespace reuseport::bench {

// Message size of requests and replies (the "64-byte request").
inline constexpr int kMessageBytes = 64;

// One process, one socket with SO_REUSEPORT (natively or through the shim):
// accept, read a request, write a reply, close. Writes "<port>\n" to fd 3 once
// listening; on SIGTERM prints "served <n>" and exits.
int ServeTcpReuseport(const char* host, uint16_t port);

// Classic prefork: one listener shared by `workers` forked processes, each in
// a blocking accept(). Prints one "served <n>" line per worker.
int ServeTcpShared(const char* host, uint16_t port, int workers);

// UDP: count datagrams received on a SO_REUSEPORT socket (recvmmsg batches).
int ServeUdpReuseport(const char* host, uint16_t port);
// UDP: one socket shared by `workers` forked readers.
int ServeUdpShared(const char* host, uint16_t port, int workers);

}  // namespace reuseport::bench

#endif  // REUSEPORT_TESTS_BENCH_BENCH_SERVERS_H_
