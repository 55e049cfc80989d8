// The client side of the benchmark: load generators, each bounded by time (and
// the probes by a number of rounds), run from the orchestrator's own thread.
#ifndef REUSEPORT_TESTS_BENCH_BENCH_CLIENTS_H_
#define REUSEPORT_TESTS_BENCH_BENCH_CLIENTS_H_

#include <sys/socket.h>

#include <cstdint>
#include <vector>

namespace reuseport::bench {

// Seconds on CLOCK_MONOTONIC.
double Now();

struct Endpoint {
  sockaddr_storage address{};
  socklen_t length = 0;
  static Endpoint Loopback(uint16_t port);
  const sockaddr* sockaddr_ptr() const { return reinterpret_cast<const sockaddr*>(&address); }
};

struct TcpRun {
  uint64_t completed = 0;  // connect, 64-byte request, 64-byte reply, close
  uint64_t failed = 0;
  double seconds = 0;
};

// `concurrency` connections in flight from one thread for `seconds`.
TcpRun RunTcpClosedLoop(const Endpoint& target, int concurrency, double seconds);

// One connection on an idle server: microseconds from connect() to the
// reply's first byte, or a negative value if it failed.
double TcpFirstByte(const Endpoint& target);

struct TcpPersistentRun {
  int connections = 0;     // connected and answering
  uint64_t round_trips = 0;  // 64-byte request, 64-byte reply, counted after the warm-up
  uint64_t failed = 0;     // connections that broke
  double seconds = 0;      // measured time (after the warm-up)
  std::vector<float> latency_us;  // one per round trip after the warm-up
};

// `connections` persistent connections, each with one request outstanding at a
// time, for `warmup` + `seconds`.
TcpPersistentRun RunTcpPersistent(const Endpoint& target, int connections, double warmup, double seconds);

struct UdpRun {
  uint64_t sent = 0;
  double seconds = 0;
  double target_rate = 0;  // 0: as fast as possible
  double sent_rate() const { return seconds > 0 ? static_cast<double>(sent) / seconds : 0; }
};

// `flows` sockets (distinct source ports) sending `payload` bytes as fast as
// sendmmsg allows, or paced at `rate` datagrams/s when rate > 0. Pacing sleeps
// to absolute deadlines with a 1 ns timer slack and never bursts more than about
// a millisecond's worth to catch up, so the actual rate (sent / seconds, always
// reported) is what the receivers saw.
UdpRun BlastUdp(const Endpoint& target, int flows, int payload, double seconds, double rate);

// A flood: `flows` sockets each handing the kernel 64 datagrams per call, with
// UDP GSO (UDP_SEGMENT, Linux 4.18) where the host has it and sendmmsg where
// not, as fast as one thread can for `seconds`. *gso says which it used.
UdpRun FloodUdp(const Endpoint& target, int flows, int payload, double seconds, bool* gso);

// Many UDP flows, each a connected socket kept open so its 4-tuple does not
// change between probes. Probe() sends one datagram per flow and reads the
// answer (the id of the member that got it) from each.
class UdpFlowSet {
 public:
  UdpFlowSet() = default;
  UdpFlowSet(const UdpFlowSet&) = delete;
  UdpFlowSet& operator=(const UdpFlowSet&) = delete;
  ~UdpFlowSet();

  bool Open(const Endpoint& target, int flows);
  // The answering id of each flow, -1 where none came within `rounds` tries of
  // `round_ms` each.
  std::vector<int> Probe(int rounds = 5, int round_ms = 200);

 private:
  std::vector<int> fds_;
  int epoll_ = -1;
};

}  // namespace reuseport::bench

#endif  // REUSEPORT_TESTS_BENCH_BENCH_CLIENTS_H_
