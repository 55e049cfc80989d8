// The control socket's path: made so that connect() never finds it missing or
// not yet listening, taken over from a running broker on request, and removed
// at exit only while it is still ours.
//
// Thread-safety: none; the broker's main thread.
#ifndef REUSEPORT_BROKER_CONTROL_SOCKET_H_
#define REUSEPORT_BROKER_CONTROL_SOCKET_H_

#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"
#include "unique_fd.h"

namespace reuseport::broker {

class ControlSocket {
 public:
  // Listens at `path` with permissions `mode`. A socket file left by a broker
  // that died is replaced; one that answers belongs to a running broker and
  // is taken over (RP_OP_TAKEOVER) only when `takeover` is set.
  absl::StatusOr<UniqueFd> Publish(const std::string& path, mode_t mode, bool takeover);

  // Removes the path if it is still the file we made (a successor may have
  // renamed its own over it).
  void Unpublish();

  // The directory holding the socket: the one place the broker may remove a
  // file once hardened (hardening.h allows unlinkat on this fd only).
  int directory_fd() const { return directory_.get(); }

 private:
  UniqueFd directory_;
  std::string name_;  // in directory_
  ino_t inode_ = 0;
};

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_CONTROL_SOCKET_H_
