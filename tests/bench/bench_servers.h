// The server side of the benchmark: worker processes that the orchestrator
// starts (natively, as a shared-socket prefork, or under the shim and the
// legacy-kernel runner) and stops with SIGTERM.
//
// Every worker writes "<port>\n" to fd 3 once its socket is bound (and
// listening) and then counts what it handles in its own slot of a counter file
// the orchestrator maps too (see WorkerCounters), so load, fairness and the
// drain of queues can be read live, without asking the worker.
#ifndef REUSEPORT_TESTS_BENCH_BENCH_SERVERS_H_
#define REUSEPORT_TESTS_BENCH_BENCH_SERVERS_H_

#include <cstdint>
#include <string>

namespace reuseport::bench {

// Message size of requests and replies (the "64-byte request").
inline constexpr int kMessageBytes = 64;

// What a worker does.
enum class ServerKind {
  kTcpShort,  // blocking accept, read a 64-byte request, write the reply, close
  kTcpLong,   // epoll over the listener and every connection: echo 64-byte requests
  kUdpCount,  // count datagrams received (recvmmsg batches)
  kUdpIdent,  // answer each datagram with the worker's id, from the receiving socket
};

struct ServerOptions {
  ServerKind kind = ServerKind::kTcpShort;
  std::string host = "127.0.0.1";
  uint16_t port = 0;             // 0: any free port
  bool reuseport = true;         // setsockopt(SO_REUSEPORT) before bind
  int shared_workers = 0;        // > 0: one socket shared by this many forked workers
  std::string counters_path;     // the counter file; empty: count nothing
  int slot = 0;                  // this worker's slot (forked workers take slot, slot+1, ...)
  int id = 0;                    // kUdpIdent: the id it answers with
};

// Runs a worker until SIGTERM or SIGINT. Returns the process's exit status.
int RunServer(const ServerOptions& options);

// The read() loop of the overhead test, on a pipe ("pipe") or a regular file
// ("file") filled beforehand, timed in the process: `loops` times `count` reads
// of one byte (the fastest loop counts), then `count` reads in alternating
// chunks through read() and through libc's read directly (past the shim, if it
// is preloaded). Prints "<kind> wall_ns W cpu_ns C hooked_ns H direct_ns D
// paired_percent P": ns per read, and the median of the chunk pairs' H/D - 1.
int RunReadLoop(const std::string& kind, long count, int loops, const std::string& scratch_dir);

}  // namespace reuseport::bench

#endif  // REUSEPORT_TESTS_BENCH_BENCH_SERVERS_H_
