// Fuzzes ParseRecord, the broker's framing check (pure: no I/O).
//
// Input: byte 0 bit 0 is `truncated` (as if the kernel had said MSG_TRUNC);
// the remaining bytes are the record. The record is passed in its own
// exact-size allocation so that ASan sees any read past its end.
#include <errno.h>
#include <string.h>

#include <memory>

#include "fuzz_check.h"
#include "reuseport/protocol.h"
#include "wire.h"

using reuseport::broker::ParseRecord;
using reuseport::broker::Record;
using reuseport::broker::RecordError;

namespace {

bool StartsWithHeader(const char* data, size_t size, const rp_header& h) {
  return size >= sizeof(rp_header) && memcmp(data, &h, sizeof(h)) == 0;
}

void CheckAccepted(const char* data, size_t size, bool truncated, const Record& r) {
  const rp_header& h = r.header;
  FUZZ_CHECK(!truncated, "a truncated record was accepted");
  FUZZ_CHECK(h.magic == RP_MAGIC, absl::StrFormat("magic 0x%08x", h.magic));
  FUZZ_CHECK(h.version == RP_VERSION, absl::StrFormat("version %d", h.version));
  FUZZ_CHECK(h.header_size == sizeof(rp_header), absl::StrFormat("header_size %d", h.header_size));
  FUZZ_CHECK(r.payload.size() == h.payload_size,
             absl::StrFormat("payload %d bytes, payload_size %d", r.payload.size(), h.payload_size));
  FUZZ_CHECK(sizeof(rp_header) + r.payload.size() + r.trailing.size() == size,
             absl::StrFormat("32 + %d + %d != %d", r.payload.size(), r.trailing.size(), size));
  FUZZ_CHECK(StartsWithHeader(data, size, h), "the header is not the record's first 32 bytes");
  FUZZ_CHECK(memcmp(r.payload.data(), data + sizeof(rp_header), r.payload.size()) == 0, "payload bytes differ");
  FUZZ_CHECK(memcmp(r.trailing.data(), data + sizeof(rp_header) + r.payload.size(), r.trailing.size()) == 0,
             "trailing bytes differ");
  FUZZ_CHECK(r.fds.empty(), "ParseRecord produced fds");
}

void CheckRejected(const char* data, size_t size, const RecordError& e) {
  FUZZ_CHECK(e.error == EBADMSG || e.error == EPROTONOSUPPORT || e.error == EMSGSIZE,
             absl::StrFormat("error %d (%s)", e.error, e.reason));
  FUZZ_CHECK(!e.reason.empty(), absl::StrFormat("no reason given for error %d", e.error));
  // The header is "readable" (its request_id echoed in the reply) exactly when
  // the record is long enough for one and has our magic.
  uint32_t magic = 0;
  if (size >= sizeof(rp_header)) memcpy(&magic, data, sizeof(magic));
  bool readable = size >= sizeof(rp_header) && magic == RP_MAGIC;
  FUZZ_CHECK(e.header_readable == readable, absl::StrFormat("header_readable %d for %d bytes, magic 0x%08x",
                                                            e.header_readable, size, magic));
  if (readable) FUZZ_CHECK(StartsWithHeader(data, size, e.header), "error.header is not the record's header");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  bool truncated = (data[0] & 1) != 0;
  size_t length = size - 1;
  std::unique_ptr<char[]> record(new char[length]);
  memcpy(record.get(), data + 1, length);

  Record r;
  RecordError e;
  if (ParseRecord(absl::MakeConstSpan(record.get(), length), truncated, &r, &e)) {
    CheckAccepted(record.get(), length, truncated, r);
  } else {
    CheckRejected(record.get(), length, e);
  }
  return 0;
}
