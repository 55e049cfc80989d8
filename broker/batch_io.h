// recvmmsg (2.6.33) and sendmmsg (3.0) with a fallback to one message per call
// when the kernel or a sandbox refuses them with ENOSYS: the datagram path
// batches where it can and still works where it cannot.
#ifndef REUSEPORT_BROKER_BATCH_IO_H_
#define REUSEPORT_BROKER_BATCH_IO_H_

#include <sys/socket.h>

namespace reuseport::broker {

// As recvmmsg(fd, msgs, count, flags, nullptr): the number of messages
// received, or -1 with errno when the first receive failed.
int ReceiveBatch(int fd, struct mmsghdr* msgs, unsigned count, int flags);

// As sendmmsg(fd, msgs, count, flags): the number of messages sent, or -1
// with errno when the first send failed.
int SendBatch(int fd, struct mmsghdr* msgs, unsigned count, int flags);

// For tests: behave as on a kernel without the batched calls.
void ForgetBatchCallsForTesting();

}  // namespace reuseport::broker

#endif  // REUSEPORT_BROKER_BATCH_IO_H_
