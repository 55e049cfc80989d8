#include "metrics_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "log.h"

namespace reuseport::broker {

namespace {

constexpr size_t kMaxConnections = 64;
constexpr size_t kMaxRequest = 8192;
constexpr int64_t kDeadlineMs = 5000;

bool ParseAddress(const std::string& text, sockaddr_storage* out, socklen_t* len) {
  std::string host, port;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') return false;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos) return false;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  int p = 0;
  if (!absl::SimpleAtoi(port, &p) || p < 0 || p > 65535) return false;
  memset(out, 0, sizeof(*out));
  auto* v4 = reinterpret_cast<sockaddr_in*>(out);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(out);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(p));
    *len = sizeof(*v4);
    return true;
  }
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(p));
    *len = sizeof(*v6);
    return true;
  }
  return false;
}

}  // namespace

MetricsHttpServer::MetricsHttpServer(EventLoop& loop, std::function<std::string()> render)
    : loop_(loop), render_(std::move(render)) {}

MetricsHttpServer::~MetricsHttpServer() {
  for (auto& [id, c] : connections_) loop_.Remove(c->watch);
  loop_.Remove(listener_watch_);
}

absl::Status MetricsHttpServer::Start(const std::string& address) {
  sockaddr_storage ss;
  socklen_t len = 0;
  if (!ParseAddress(address, &ss, &len)) {
    return absl::InvalidArgumentError(absl::StrFormat("--metrics_address '%s' is not HOST:PORT", address));
  }
  listener_.reset(socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  int one = 1;
  setsockopt(listener_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (!listener_ || bind(listener_.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0 || listen(listener_.get(), 64) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrFormat("metrics listener on %s", address));
  }
  len = sizeof(ss);
  getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&ss), &len);
  port_ = ntohs(ss.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                        : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  listener_watch_ = loop_.Add(listener_.get(), EPOLLIN, [this](uint32_t) { OnAcceptable(); });
  if (listener_watch_ == nullptr) return absl::InternalError("cannot watch the metrics listener");
  return absl::OkStatus();
}

void MetricsHttpServer::OnAcceptable() {
  for (int i = 0; i < 16; ++i) {
    int fd = accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    if (connections_.size() >= kMaxConnections && !EvictIdle()) {
      close(fd);
      LogLimited("metrics-busy", Severity::kWarning, "metrics: %d scrapes at once; refusing more", kMaxConnections);
      continue;
    }
    uint64_t id = ++next_id_;
    auto c = std::make_unique<Connection>();
    c->fd.reset(fd);
    c->accepted_ms = EventLoop::NowMs();
    c->deadline_ms = c->accepted_ms + kDeadlineMs;
    c->watch = loop_.Add(fd, EPOLLIN | EPOLLRDHUP, [this, id](uint32_t events) { OnConnection(id, events); });
    connections_[id] = std::move(c);
    if (!expiry_scheduled_) {
      expiry_scheduled_ = true;
      loop_.After(kDeadlineMs, [this] {
        expiry_scheduled_ = false;
        ExpireSlowConnections();
      });
    }
  }
}

void MetricsHttpServer::OnConnection(uint64_t id, uint32_t /*events*/) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  Connection& c = *it->second;
  if (c.response.empty()) {
    char buf[2048];
    for (;;) {
      ssize_t n = read(c.fd.get(), buf, sizeof(buf));
      if (n > 0) {
        c.request.append(buf, static_cast<size_t>(n));
        if (c.request.size() > kMaxRequest) {
          Close(id);
          return;
        }
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        if (c.request.find("\r\n\r\n") == std::string::npos && c.request.find("\n\n") == std::string::npos) {
          Close(id);
          return;
        }
      }
      break;
    }
    if (c.request.find("\r\n\r\n") == std::string::npos && c.request.find("\n\n") == std::string::npos) return;
    Respond(c);
    loop_.Modify(c.watch, EPOLLOUT);
  }
  while (c.written < c.response.size()) {
    ssize_t n = send(c.fd.get(), c.response.data() + c.written, c.response.size() - c.written, MSG_NOSIGNAL);
    if (n > 0) {
      c.written += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    break;
  }
  Close(id);
}

void MetricsHttpServer::Respond(Connection& c) {
  std::string line = c.request.substr(0, c.request.find_first_of("\r\n"));
  std::string status = "200 OK", type = "text/plain; version=0.0.4; charset=utf-8", body;
  if (line.rfind("GET ", 0) != 0 && line.rfind("HEAD ", 0) != 0) {
    status = "405 Method Not Allowed";
    type = "text/plain";
    body = "only GET /metrics\n";
  } else {
    std::string path = line.substr(line.find(' ') + 1);
    path = path.substr(0, path.find(' '));
    if (path == "/metrics" || path == "/") {
      body = render_();
    } else {
      status = "404 Not Found";
      type = "text/plain";
      body = "see /metrics\n";
    }
  }
  c.response = absl::StrFormat("HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", status,
                               type, body.size());
  if (line.rfind("HEAD ", 0) != 0) c.response += body;
}

bool MetricsHttpServer::EvictIdle() {
  uint64_t oldest = 0;
  int64_t oldest_ms = 0;
  for (const auto& [id, c] : connections_) {
    if (!c->response.empty()) continue;  // being answered
    if (oldest == 0 || c->accepted_ms < oldest_ms || (c->accepted_ms == oldest_ms && id < oldest)) {
      oldest = id;
      oldest_ms = c->accepted_ms;
    }
  }
  if (oldest == 0) return false;
  Close(oldest);
  return true;
}

void MetricsHttpServer::Close(uint64_t id) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  loop_.Remove(it->second->watch);
  connections_.erase(it);
}

void MetricsHttpServer::ExpireSlowConnections() {
  int64_t now = EventLoop::NowMs();
  std::vector<uint64_t> expired;
  for (auto& [id, c] : connections_) {
    if (c->deadline_ms <= now) expired.push_back(id);
  }
  for (uint64_t id : expired) Close(id);
  if (!connections_.empty() && !expiry_scheduled_) {
    expiry_scheduled_ = true;
    loop_.After(1000, [this] {
      expiry_scheduled_ = false;
      ExpireSlowConnections();
    });
  }
}

}  // namespace reuseport::broker
