// Chunk codec, in process: multi-chunk round trips, zero-copy payload slices, and
// every malformed-input path (garbage, truncation, overrun, version, interleaving).
#include "distributed/chunk_codec.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

using test::Ramp;
using test::StatusHas;
using test::TensorEq;

std::vector<grpc::ByteBuffer> Encode(const Tensor& t, int64_t chunk, const std::string& key = "k") {
  ChunkEncoder enc(7, key, t, {.chunk_bytes = chunk});
  std::vector<grpc::ByteBuffer> out;
  grpc::ByteBuffer msg;
  while (enc.Next(&msg)) out.push_back(msg);
  return out;
}

grpc::ByteBuffer Raw(const std::string& bytes) {
  grpc::Slice s(bytes);
  return grpc::ByteBuffer(&s, 1);
}

grpc::ByteBuffer Frame(const proto::ChunkHeader& h, const std::string& payload) {
  std::string body = h.SerializeAsString();
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((body.size() >> (8 * i)) & 0xff);
  return Raw(out + body + payload);
}

TEST(ChunkCodecTest, RoundTripsManyChunks) {
  Tensor t = Ramp(10000);  // 40000 bytes in 4 KiB chunks: 10 chunks.
  std::vector<grpc::ByteBuffer> chunks = Encode(t, 4096);
  ASSERT_EQ(chunks.size(), 10u);
  ChunkAssembler a;
  for (size_t i = 0; i < chunks.size(); ++i) {
    absl::StatusOr<bool> done = a.Add(chunks[i]);
    ASSERT_TRUE(done.ok()) << done.status();
    EXPECT_EQ(*done, i + 1 == chunks.size());
  }
  ChunkAssembler::Received r = a.Take();
  EXPECT_EQ(r.step_id, 7);
  EXPECT_EQ(r.key, "k");
  EXPECT_TRUE(TensorEq(r.tensor, t));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(r.tensor.raw_data()) % kTensorAlignment, 0u);
  EXPECT_TRUE(a.Finish().ok());
}

// A chunk is one gRPC message: with a message cap, payloads shrink so that a header with a long
// key still fits.
TEST(ChunkCodecTest, ChunksShrinkToFitTheMessageCapWithALongKey) {
  Tensor t = Ramp(10000);  // 40000 bytes.
  const std::string key(3000, 'k');
  ChunkEncoder enc(7, key, t, {.chunk_bytes = 8192, .max_message_bytes = 8192});
  ChunkAssembler a;
  grpc::ByteBuffer msg;
  int chunks = 0;
  while (enc.Next(&msg)) {
    ++chunks;
    EXPECT_LE(msg.Length(), 8192u);
    ASSERT_TRUE(a.Add(msg).ok());
  }
  EXPECT_GT(chunks, 40000 / 8192 + 1);  // More chunks than the payload size alone needs.
  ChunkAssembler::Received r = a.Take();
  EXPECT_EQ(r.key, key);
  EXPECT_TRUE(TensorEq(r.tensor, t));
}

TEST(ChunkCodecTest, EmptyAndScalarTensors) {
  for (const Tensor& t :
       {Tensor(DType::kInt32, TensorShape({0, 3})), Tensor::Scalar<int64_t>(42)}) {
    std::vector<grpc::ByteBuffer> chunks = Encode(t, 1024);
    ASSERT_EQ(chunks.size(), 1u);
    ChunkAssembler a;
    ASSERT_TRUE(*a.Add(chunks[0]));
    EXPECT_TRUE(TensorEq(a.Take().tensor, t));
  }
}

TEST(ChunkCodecTest, PayloadSliceHoldsTheTensorBuffer) {
  Tensor t = Ramp(1000);
  std::vector<grpc::ByteBuffer> chunks = Encode(t, 1 << 20);
  EXPECT_FALSE(t.RefCountIsOne());  // The slice shares the buffer: no copy was made.
  chunks.clear();
  EXPECT_TRUE(t.RefCountIsOne());  // Released with the message.
}

TEST(ChunkCodecTest, GarbageIsRejected) {
  ChunkAssembler a;
  EXPECT_TRUE(StatusHas(a.Add(Raw("ab")).status(), absl::StatusCode::kInvalidArgument,
                        "shorter than its 4-byte header length"));
  EXPECT_TRUE(StatusHas(a.Add(Raw(std::string("\xff\xff\xff\x7f", 4) + "junk")).status(),
                        absl::StatusCode::kInvalidArgument, "exceeds the limit"));
  EXPECT_TRUE(StatusHas(a.Add(Raw(std::string("\x05\0\0\0", 4) + "ab")).status(),
                        absl::StatusCode::kInvalidArgument, "truncated inside its 5-byte header"));
  EXPECT_TRUE(StatusHas(a.Add(Raw(std::string("\x03\0\0\0", 4) + "\xff\xff\xff")).status(),
                        absl::StatusCode::kInvalidArgument, "not a valid ChunkHeader"));
}

TEST(ChunkCodecTest, VersionMismatchIsFailedPrecondition) {
  proto::ChunkHeader h;
  h.set_protocol_version(99);
  ChunkAssembler a;
  EXPECT_TRUE(StatusHas(a.Add(Frame(h, "")).status(), absl::StatusCode::kFailedPrecondition,
                        absl::StrCat("peer speaks 99, this server speaks ", kProtocolVersion)));
}

TEST(ChunkCodecTest, DeclaredLengthMustMatchPayload) {
  std::vector<grpc::ByteBuffer> chunks = Encode(Ramp(16), 1024);
  ASSERT_TRUE(ParseChunkHeader(chunks[0], 1024).ok());
  proto::ChunkHeader h = *ParseChunkHeader(chunks[0], 1024);
  ChunkAssembler a;
  EXPECT_TRUE(StatusHas(a.Add(Frame(h, std::string(10, 'x'))).status(),
                        absl::StatusCode::kInvalidArgument,
                        "declares 64 payload bytes but carries 10"));
}

TEST(ChunkCodecTest, OverrunAndBadTotalAreRejected) {
  proto::ChunkHeader h = *ParseChunkHeader(Encode(Ramp(16), 1024)[0], 1024);
  h.set_length(80);
  ChunkAssembler a;
  EXPECT_TRUE(StatusHas(a.Add(Frame(h, std::string(80, 'x'))).status(),
                        absl::StatusCode::kInvalidArgument,
                        "overruns the tensor: offset 0 + 80 > 64"));
  h.set_length(64);
  h.set_total_bytes(1000);
  EXPECT_TRUE(StatusHas(a.Add(Frame(h, std::string(64, 'x'))).status(),
                        absl::StatusCode::kInvalidArgument, "does not match its dtype and shape"));
  ChunkAssembler small({.max_tensor_bytes = 32});
  h.set_total_bytes(64);
  EXPECT_TRUE(StatusHas(small.Add(Frame(h, std::string(64, 'x'))).status(),
                        absl::StatusCode::kInvalidArgument,
                        "announces 64 bytes, over the limit of 32"));
}

TEST(ChunkCodecTest, AShapeWhoseSizeOverflowsIsRejected) {
  // [2^32, 2^32] float32 wraps to 0 bytes unchecked, matching an empty tensor's total.
  proto::ChunkHeader h = *ParseChunkHeader(Encode(Ramp(0), 1024)[0], 1024);
  h.mutable_shape()->clear_dim();
  h.mutable_shape()->add_dim(int64_t{1} << 32);
  h.mutable_shape()->add_dim(int64_t{1} << 32);
  ChunkAssembler a;
  EXPECT_TRUE(StatusHas(a.Add(Frame(h, "")).status(), absl::StatusCode::kInvalidArgument,
                        "total_bytes 0 does not match its dtype and shape"));
}

TEST(ChunkCodecTest, TruncatedAndInterleavedStreams) {
  std::vector<grpc::ByteBuffer> chunks = Encode(Ramp(100), 100);  // 4 chunks.
  ChunkAssembler a;
  ASSERT_FALSE(*a.Add(chunks[0]));
  EXPECT_TRUE(StatusHas(a.Finish(), absl::StatusCode::kInvalidArgument,
                        "truncated tensor 'k' (step 7): stream ended after 100 of 400 bytes"));
  EXPECT_TRUE(StatusHas(a.Add(chunks[2]).status(), absl::StatusCode::kInvalidArgument,
                        "at offset 200, expected 100"));
  EXPECT_TRUE(StatusHas(a.Add(Encode(Ramp(100), 100, "other")[1]).status(),
                        absl::StatusCode::kInvalidArgument,
                        "interleaves with unfinished tensor 'k'"));
}

TEST(ChunkCodecTest, AnAbandonedTensorIsDroppedAndTheStreamGoesOn) {
  Tensor t = Ramp(100);  // 400 bytes in 4 chunks.
  ChunkEncoder enc(7, "k", t, {.chunk_bytes = 100});
  grpc::ByteBuffer first, second, abandon;
  ASSERT_TRUE(enc.Next(&first));
  ASSERT_TRUE(enc.Next(&second));
  EXPECT_TRUE(enc.has_more());
  EXPECT_EQ(enc.sent_bytes(), 200);
  enc.Abandon(&abandon);
  proto::ChunkHeader h = *ParseChunkHeader(abandon, 1024);
  EXPECT_TRUE(h.abandoned());
  EXPECT_EQ(h.offset(), 200);
  EXPECT_EQ(h.length(), 0);

  ChunkAssembler a;
  ASSERT_FALSE(*a.Add(first));
  ASSERT_FALSE(*a.Add(second));
  absl::StatusOr<bool> dropped = a.Add(abandon);
  ASSERT_TRUE(dropped.ok()) << dropped.status();
  EXPECT_FALSE(*dropped);
  EXPECT_FALSE(a.in_progress());
  EXPECT_EQ(a.abandoned(), 1);
  EXPECT_EQ(a.last_abandoned_key(), "k");
  EXPECT_TRUE(a.Finish().ok());  // Nothing is half-received any more.
  // The next tensor on the stream arrives whole.
  Tensor next = Ramp(30);
  for (const grpc::ByteBuffer& c : Encode(next, 50, "k2")) ASSERT_TRUE(a.Add(c).ok());
  ChunkAssembler::Received r = a.Take();
  EXPECT_EQ(r.key, "k2");
  EXPECT_TRUE(TensorEq(r.tensor, next));
  // An abandon notice for a tensor that is not being received, or with bytes, is bad input.
  EXPECT_TRUE(
      StatusHas(a.Add(abandon).status(), absl::StatusCode::kInvalidArgument,
                "chunk of tensor 'k' (step 7) abandons a tensor that is not being received"));
  ChunkAssembler b;
  ASSERT_FALSE(*b.Add(first));
  h.set_length(4);
  EXPECT_TRUE(StatusHas(b.Add(Frame(h, "abcd")).status(), absl::StatusCode::kInvalidArgument,
                        "an abandon notice carries bytes"));
}

}  // namespace
}  // namespace sluice
