// Small gRPC helpers shared by the distributed runtime: status conversion, channel creation
// with a dedicated connection, and protobuf <-> raw ByteBuffer. Thread-safe: stateless.
//
//   auto channel = MakeChannel("127.0.0.1:5001", /*max_message_bytes=*/64 << 10);
//   return FromGrpc(stub->Heartbeat(&ctx, req, &resp));
#ifndef SLUICE_DISTRIBUTED_GRPC_UTIL_H_
#define SLUICE_DISTRIBUTED_GRPC_UTIL_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "google/protobuf/message.h"
#include "grpcpp/grpcpp.h"

namespace sluice {

grpc::Status ToGrpc(const absl::Status& s);
absl::Status FromGrpc(const grpc::Status& s);

// A channel on its own TCP connection (a local subchannel pool, so the control and data
// channels to one worker never share a connection). max_message_bytes < 0: gRPC's default.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, int max_message_bytes = -1);

grpc::ByteBuffer SerializeToByteBuffer(const google::protobuf::Message& msg);
bool ParseFromByteBuffer(const grpc::ByteBuffer& buf, google::protobuf::Message* msg);

}  // namespace sluice

#endif  // SLUICE_DISTRIBUTED_GRPC_UTIL_H_
