// Fuzzes the data plane's chunk decoding (distributed/chunk_codec.h): the bytes a peer, or
// anyone who can reach a worker's data port, pushes. The input is a stream of chunk messages as
// DataPlaneService::Push reads them; each message is also given to ParseChunkHeader.
//
// Input: records [u8 split][u16 LE length][length bytes] (tests/fuzz/fuzz_input.h), each one
// gRPC message. A non-zero `split` cuts the message into two slices at split % (length + 1),
// as gRPC may deliver it, so the reader's walk across slice boundaries is covered too.
//
// Checked beyond "no crash": Add accepts only chunks ParseChunkHeader accepts, and a completed
// tensor has the key, step and byte count its first chunk announced.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "distributed/chunk_codec.h"
#include "distributed/protocol.pb.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/slice.h"
#include "tests/fuzz/fuzz_input.h"

namespace {

grpc::ByteBuffer Message(uint8_t split, absl::string_view bytes) {
  std::vector<grpc::Slice> slices;
  if (split == 0) {
    slices.emplace_back(bytes.data(), bytes.size());
  } else {
    const size_t at = split % (bytes.size() + 1);
    slices.emplace_back(bytes.data(), at);
    slices.emplace_back(bytes.data() + at, bytes.size() - at);
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using sluice::ChunkAssembler;
  sluice::fuzz::FuzzInput in(data, size);
  // A smaller tensor cap than the 8 GiB default: a garbage header announcing gigabytes would
  // otherwise be an allocation the limit allows by design (and the fuzzer's RSS cap refuses).
  sluice::AssemblerLimits limits;
  limits.max_tensor_bytes = 16 << 20;
  ChunkAssembler assembler(limits);
  sluice::proto::ChunkHeader first;  // Of the tensor being received.
  while (!in.empty()) {
    const sluice::fuzz::FuzzInput::Record r = in.NextRecord();
    const grpc::ByteBuffer msg = Message(r.tag, r.bytes);
    absl::StatusOr<sluice::proto::ChunkHeader> header =
        sluice::ParseChunkHeader(msg, limits.max_header_bytes);
    if (header.ok() && !assembler.in_progress()) first = *header;
    absl::StatusOr<bool> done = assembler.Add(msg);
    if (!done.ok()) return 0;  // Push ends the stream at the first bad chunk.
    if (!header.ok()) {
      std::fprintf(stderr, "chunk_codec_fuzz: Add took a chunk ParseChunkHeader refuses: %s\n",
                   header.status().ToString().c_str());
      std::abort();
    }
    if (*done) {
      ChunkAssembler::Received got = assembler.Take();
      if (got.key != first.key() || got.step_id != first.step_id() ||
          static_cast<int64_t>(got.tensor.TotalBytes()) != first.total_bytes()) {
        std::fprintf(stderr,
                     "chunk_codec_fuzz: received tensor '%s' (step %lld, %zu bytes) but its "
                     "first chunk announced '%s' (step %lld, %lld bytes)\n",
                     got.key.c_str(), static_cast<long long>(got.step_id),
                     static_cast<size_t>(got.tensor.TotalBytes()), first.key().c_str(),
                     static_cast<long long>(first.step_id()),
                     static_cast<long long>(first.total_bytes()));
        std::abort();
      }
    }
  }
  (void)assembler.Finish();
  return 0;
}
