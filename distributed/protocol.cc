#include "distributed/protocol.h"

#include "absl/strings/str_cat.h"

namespace sluice {

absl::Status CheckProtocolVersion(int version, absl::string_view what) {
  if (version == kProtocolVersion) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat(what, ": protocol version mismatch: peer speaks ", version,
                   ", this server speaks ", kProtocolVersion));
}

}  // namespace sluice
