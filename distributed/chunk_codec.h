// Chunk codec: the data plane's framing of tensors into raw gRPC messages.
//
// A tensor travels as one or more chunks; each chunk is one gRPC message laid out as
//   [uint32 little-endian header length][proto::ChunkHeader][payload bytes]
// so no gRPC message-size limit applies to the tensor (only to one chunk). ChunkEncoder builds
// each message from two slices: the serialised header and a slice that points straight into the
// tensor's buffer (zero copy; the slice holds a Tensor reference until gRPC releases it).
// ChunkAssembler validates every chunk (version, header size, dtype/shape/total agreement,
// in-order offsets, declared vs carried payload length, size limits) and copies payloads into a
// preallocated 64-byte-aligned Tensor; bad input is an InvalidArgument error, never a crash. A
// sender that gives a tensor up midway sends an abandon notice (ChunkEncoder::Abandon); the
// assembler then drops the partial tensor and the stream goes on.
// Thread-compatible: one encoder/assembler per stream.
//
//   ChunkEncoder enc(step_id, "a->b:x", tensor, {.chunk_bytes = 1 << 20});
//   grpc::ByteBuffer msg;
//   while (enc.Next(&msg)) writer->Write(msg);
//   ...
//   ChunkAssembler asm_;
//   SLUICE_ASSIGN_OR_RETURN(bool done, asm_.Add(msg));
//   if (done) { ChunkAssembler::Received r = asm_.Take(); ... }
#ifndef SLUICE_DISTRIBUTED_CHUNK_CODEC_H_
#define SLUICE_DISTRIBUTED_CHUNK_CODEC_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "distributed/protocol.h"
#include "grpcpp/support/byte_buffer.h"

namespace sluice {

struct ChunkOptions {
  // Payload bytes per chunk, at most: with max_message_bytes > 0 a chunk's payload also shrinks
  // so that payload and header (whose rendezvous key has no length limit) fit one message.
  int64_t chunk_bytes = 1 << 20;
  int64_t max_message_bytes = -1;
};

class ChunkEncoder {
 public:
  // `resent`: this is a copy of a tensor whose first push may have been lost with its
  // connection (ChunkHeader.resent).
  ChunkEncoder(int64_t step_id, std::string key, Tensor tensor, const ChunkOptions& options,
               bool resent = false);
  // Fills `msg` with the next chunk; false once every chunk has been produced (a tensor of zero
  // bytes still produces one chunk).
  bool Next(grpc::ByteBuffer* msg);
  // True while Next has chunks left to produce.
  bool has_more() const { return first_ || offset_ < header_.total_bytes(); }
  int64_t sent_bytes() const { return offset_; }
  // Fills `msg` with a notice that the rest of the tensor will not come (see
  // ChunkHeader.abandoned); for a tensor whose first chunk was produced and which has more.
  void Abandon(grpc::ByteBuffer* msg);

 private:
  // The header (with `length` payload bytes at the current offset) as the message's first slice.
  grpc::Slice HeaderSlice(int64_t length);

  proto::ChunkHeader header_;
  Tensor tensor_;
  int64_t chunk_bytes_;
  int64_t offset_ = 0;
  bool first_ = true;
};

struct AssemblerLimits {
  // Largest tensor a peer may announce (guards the preallocation against garbage headers).
  int64_t max_tensor_bytes = int64_t{8} << 30;
  int64_t max_header_bytes = 64 << 10;
};

class ChunkAssembler {
 public:
  struct Received {
    int64_t step_id = 0;
    std::string key;
    Tensor tensor;
    bool resent = false;  // A copy the sender pushed again (ChunkHeader.resent).
  };

  explicit ChunkAssembler(AssemblerLimits limits = {}) : limits_(limits) {}
  // Consumes one chunk message; true when it completed a tensor (then call Take()).
  absl::StatusOr<bool> Add(const grpc::ByteBuffer& msg);
  Received Take();
  // OK unless a tensor is partly received (the stream ended early: truncated).
  absl::Status Finish() const;
  bool in_progress() const { return in_progress_; }
  int64_t abandoned() const { return abandoned_; }  // Tensors the sender gave up midway.
  const std::string& last_abandoned_key() const { return last_abandoned_key_; }

 private:
  AssemblerLimits limits_;
  bool in_progress_ = false;
  proto::ChunkHeader first_;
  int64_t received_ = 0;
  Received current_;
  bool complete_ = false;
  int64_t abandoned_ = 0;
  std::string last_abandoned_key_;
};

// Parses the header of one chunk message (exposed for tests).
absl::StatusOr<proto::ChunkHeader> ParseChunkHeader(const grpc::ByteBuffer& msg,
                                                    int64_t max_header_bytes);

}  // namespace sluice

#endif  // SLUICE_DISTRIBUTED_CHUNK_CODEC_H_
