// The wire protocol's one version constant and its one check, for every service and the data
// plane's chunk headers (the messages themselves: distributed/protocol.proto, docs/protocol.md).
//
//   SLUICE_RETURN_IF_ERROR(CheckProtocolVersion(req.protocol_version(), "RunGraph"));
//   // FailedPrecondition "RunGraph: protocol version mismatch: peer speaks 7, this server
//   // speaks 2"
#ifndef SLUICE_DISTRIBUTED_PROTOCOL_H_
#define SLUICE_DISTRIBUTED_PROTOCOL_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "distributed/protocol.pb.h"

namespace sluice {

// Every request, and every chunk header, carries this; bumped on every incompatible change.
inline constexpr int kProtocolVersion = proto::PROTOCOL_VERSION_CURRENT;

// OK when `version` is kProtocolVersion; otherwise FailedPrecondition naming `what` (the call or
// message) and both versions.
absl::Status CheckProtocolVersion(int version, absl::string_view what);

}  // namespace sluice

#endif  // SLUICE_DISTRIBUTED_PROTOCOL_H_
