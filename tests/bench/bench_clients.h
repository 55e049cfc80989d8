// The client side of the benchmark: bounded load generators.
#ifndef REUSEPORT_TESTS_BENCH_BENCH_CLIENTS_H_
#define REUSEPORT_TESTS_BENCH_BENCH_CLIENTS_H_

#include <sys/socket.h>

#include <cstdint>
#include <vector>

namespace reuseport::bench {

struct TcpRun {
  uint64_t completed = 0;  // connect, 64-byte request, 64-byte reply, close
  uint64_t failed = 0;
  double seconds = 0;
};

// `concurrency` connections in flight from one thread for `seconds`.
TcpRun RunTcpClosedLoop(const sockaddr_storage& target, socklen_t len, int concurrency, double seconds);

// Sequential connections on an idle server: microseconds from connect() to
// the reply's first byte, one sample per connection.
std::vector<double> MeasureTcpFirstByte(const sockaddr_storage& target, socklen_t len, int count);

struct UdpRun {
  uint64_t sent = 0;
  double seconds = 0;
};

// `flows` sockets (distinct source ports) sending `payload` bytes as fast as
// sendmmsg allows, or at about `rate` datagrams/s when rate > 0.
UdpRun BlastUdp(const sockaddr_storage& target, socklen_t len, int flows, int payload, double seconds, double rate);

}  // namespace reuseport::bench

#endif  // REUSEPORT_TESTS_BENCH_BENCH_CLIENTS_H_
