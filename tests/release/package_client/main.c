/* Builds only with every installed header of the contract; prints a request
 * header's magic so the test sees the program ran. */
#include <stdio.h>

#include "reuseport/address_codec.h"
#include "reuseport/datagram_ring.h"
#include "reuseport/errno_name.h"
#include "reuseport/fd_passing.h"
#include "reuseport/protocol.h"

int main(void) {
  struct rp_header h = rp_request_header(RP_OP_STATUS, 0, 1);
  printf("%s %d\n", h.magic == RP_MAGIC ? "magic-ok" : "magic-bad", (int)sizeof(struct rp_ring_header));
  return 0;
}
