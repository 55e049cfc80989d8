// A broker member made by hand: a link to the control socket and the requests
// the shim would send (RP_OP_BIND with the socket over SCM_RIGHTS, then
// RP_OP_LISTEN), so thousands of groups and members cost the benchmark no
// processes. The member stays while the link is open.
//
// Thread-compatible: one owner; move-only.
#ifndef REUSEPORT_TESTS_BENCH_RAW_MEMBER_H_
#define REUSEPORT_TESTS_BENCH_RAW_MEMBER_H_

#include <cstdint>
#include <string>

namespace reuseport::bench {

class RawMember {
 public:
  RawMember() = default;
  RawMember(RawMember&& other) noexcept : link_(other.link_), next_request_(other.next_request_) { other.link_ = -1; }
  RawMember& operator=(RawMember&& other) noexcept;
  RawMember(const RawMember&) = delete;
  RawMember& operator=(const RawMember&) = delete;
  ~RawMember() { Close(); }

  // Connects the link. False (errno set) when the broker does not answer.
  bool Connect(const std::string& socket_path);

  // A new TCP group on 127.0.0.1: binds a socket to port 0 here, as the shim
  // does when the port is free, and hands it over. Returns 0 or the broker's
  // errno (-1 on a broken link); *port is the group's port.
  int CreateTcpGroup(uint16_t* port);
  // Joins the TCP group on 127.0.0.1:port with a fresh unbound socket.
  int JoinTcpGroup(uint16_t port);
  // RP_OP_LISTEN; returns 0 or the broker's errno (-1 on a broken link).
  int Listen(int backlog);

  void Close();
  bool connected() const { return link_ >= 0; }

 private:
  int Bind(int socket_fd, uint16_t port, uint16_t* bound_port);
  // Reads one reply to `request_id` into payload (up to `size` bytes); closes
  // any fds it carries. Returns its status, or -1.
  int ReadReply(uint64_t request_id, void* payload, size_t size);

  int link_ = -1;
  uint64_t next_request_ = 1;
};

}  // namespace reuseport::bench

#endif  // REUSEPORT_TESTS_BENCH_RAW_MEMBER_H_
