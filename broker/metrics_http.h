// Serves the Prometheus metrics (the same text as `reuseportctl metrics`) over
// HTTP for a scraper: GET /metrics on an address given by --metrics_address,
// normally loopback. A tiny HTTP/1.0 responder on the broker's event loop:
// bounded request size, bounded connections, a deadline per connection, so a
// slow or hostile client cannot hold the broker. When every slot is taken, a
// new connection pushes out the oldest one that has not sent its request yet:
// idle connections cannot keep a scraper out (a scraper sends its request the
// moment it connects and is answered in the same turn of the loop).
//
// Whoever can connect sees every group's metrics: the endpoint is the
// operator's (docs/operations.md says how to keep it that way).
//
// Thread-safety: none; runs on the broker's event loop.
#ifndef REUSEPORT_BROKER_METRICS_HTTP_H_
#define REUSEPORT_BROKER_METRICS_HTTP_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "event_loop.h"
#include "unique_fd.h"

namespace reuseport::broker {

class MetricsHttpServer {
 public:
  // `render` produces the metrics text on each request.
  MetricsHttpServer(EventLoop& loop, std::function<std::string()> render);
  ~MetricsHttpServer();

  // "127.0.0.1:9135", "[::1]:9135".
  absl::Status Start(const std::string& address);
  uint16_t port() const { return port_; }

 private:
  struct Connection {
    UniqueFd fd;
    EventLoop::Watch* watch = nullptr;
    std::string request;
    std::string response;
    size_t written = 0;
    int64_t deadline_ms = 0;
    int64_t accepted_ms = 0;
  };

  // Frees a slot for a new connection: closes the oldest one still waiting
  // for its request. False when every slot is busy answering.
  bool EvictIdle();

  void OnAcceptable();
  void OnConnection(uint64_t id, uint32_t events);
  void Respond(Connection& c);
  void Close(uint64_t id);
  void ExpireSlowConnections();

  EventLoop& loop_;
  std::function<std::string()> render_;
  UniqueFd listener_;
  EventLoop::Watch* listener_watch_ = nullptr;
  uint16_t port_ = 0;
  uint64_t next_id_ = 0;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Connection>> connections_;
  bool expiry_scheduled_ = false;
};

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_METRICS_HTTP_H_
