#include "distributed/chunk_codec.h"

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "core/tensor_proto.h"
#include "grpcpp/support/slice.h"

namespace sluice {
namespace {

// Releases the Tensor reference a zero-copy payload slice holds.
void ReleaseTensorRef(void* user_data) { delete static_cast<Tensor*>(user_data); }

// Reads bytes sequentially across the slices of a received message.
class SliceCursor {
 public:
  explicit SliceCursor(std::vector<grpc::Slice> slices) : slices_(std::move(slices)) {}
  int64_t remaining() const {
    int64_t n = 0;
    for (size_t i = index_; i < slices_.size(); ++i) n += slices_[i].size();
    return n - static_cast<int64_t>(pos_);
  }
  // Copies `n` bytes to `out`; false when fewer remain.
  bool Read(void* out, int64_t n) {
    char* dst = static_cast<char*>(out);
    while (n > 0) {
      if (index_ >= slices_.size()) return false;
      const grpc::Slice& s = slices_[index_];
      size_t take = std::min<size_t>(n, s.size() - pos_);
      if (take > 0) {
        std::memcpy(dst, s.begin() + pos_, take);
        dst += take;
        n -= take;
        pos_ += take;
      }
      if (pos_ == s.size()) {
        ++index_;
        pos_ = 0;
      }
    }
    return true;
  }

 private:
  std::vector<grpc::Slice> slices_;
  size_t index_ = 0;
  size_t pos_ = 0;
};

absl::StatusOr<proto::ChunkHeader> ReadHeader(SliceCursor* cursor, int64_t max_header_bytes) {
  unsigned char len_bytes[4];
  if (!cursor->Read(len_bytes, 4)) {
    return absl::InvalidArgumentError("data-plane chunk shorter than its 4-byte header length");
  }
  uint32_t len = len_bytes[0] | (len_bytes[1] << 8) | (len_bytes[2] << 16) |
                 (static_cast<uint32_t>(len_bytes[3]) << 24);
  if (len > max_header_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data-plane chunk header of ", len, " bytes exceeds the limit of ", max_header_bytes));
  }
  std::string bytes(len, '\0');
  if (!cursor->Read(bytes.data(), len)) {
    return absl::InvalidArgumentError(
        absl::StrCat("data-plane chunk truncated inside its ", len, "-byte header"));
  }
  proto::ChunkHeader header;
  if (!header.ParseFromString(bytes)) {
    return absl::InvalidArgumentError("data-plane chunk header is not a valid ChunkHeader");
  }
  SLUICE_RETURN_IF_ERROR(CheckProtocolVersion(header.protocol_version(), "data-plane chunk"));
  return header;
}

}  // namespace

ChunkEncoder::ChunkEncoder(int64_t step_id, std::string key, Tensor tensor,
                           const ChunkOptions& options, bool resent)
    : tensor_(std::move(tensor)), chunk_bytes_(std::max<int64_t>(1, options.chunk_bytes)) {
  header_.set_protocol_version(kProtocolVersion);
  header_.set_step_id(step_id);
  header_.set_key(std::move(key));
  header_.set_resent(resent);
  header_.set_dtype(DTypeToProto(tensor_.dtype()));
  ShapeToProto(tensor_.shape(), header_.mutable_shape());
  header_.set_total_bytes(tensor_.TotalBytes());
  if (options.max_message_bytes > 0) {
    // The largest header this tensor's chunks can have: offset and length at their largest.
    header_.set_offset(header_.total_bytes());
    header_.set_length(header_.total_bytes());
    const int64_t header_bytes = 4 + static_cast<int64_t>(header_.ByteSizeLong());
    chunk_bytes_ = std::clamp<int64_t>(options.max_message_bytes - header_bytes, 1, chunk_bytes_);
  }
}

grpc::Slice ChunkEncoder::HeaderSlice(int64_t length) {
  header_.set_offset(offset_);
  header_.set_length(length);
  std::string head(4, '\0');
  const std::string body = header_.SerializeAsString();
  const uint32_t n = body.size();
  for (int i = 0; i < 4; ++i) head[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  head += body;
  return grpc::Slice(head);
}

void ChunkEncoder::Abandon(grpc::ByteBuffer* msg) {
  header_.set_abandoned(true);
  grpc::Slice head = HeaderSlice(0);
  *msg = grpc::ByteBuffer(&head, 1);
}

bool ChunkEncoder::Next(grpc::ByteBuffer* msg) {
  const int64_t total = header_.total_bytes();
  if (!first_ && offset_ >= total) return false;
  first_ = false;
  const int64_t length = std::min(chunk_bytes_, total - offset_);
  grpc::Slice slices[2] = {HeaderSlice(length), grpc::Slice()};
  int num_slices = 1;
  if (length > 0) {
    char* payload = static_cast<char*>(tensor_.raw_data()) + offset_;
    slices[1] = grpc::Slice(payload, length, &ReleaseTensorRef, new Tensor(tensor_));
    num_slices = 2;
  }
  *msg = grpc::ByteBuffer(slices, num_slices);
  offset_ += length;
  return true;
}

absl::StatusOr<proto::ChunkHeader> ParseChunkHeader(const grpc::ByteBuffer& msg,
                                                    int64_t max_header_bytes) {
  std::vector<grpc::Slice> slices;
  if (!msg.Dump(&slices).ok()) return absl::InvalidArgumentError("unreadable data-plane chunk");
  SliceCursor cursor(std::move(slices));
  return ReadHeader(&cursor, max_header_bytes);
}

absl::StatusOr<bool> ChunkAssembler::Add(const grpc::ByteBuffer& msg) {
  std::vector<grpc::Slice> slices;
  if (!msg.Dump(&slices).ok()) return absl::InvalidArgumentError("unreadable data-plane chunk");
  SliceCursor cursor(std::move(slices));
  SLUICE_ASSIGN_OR_RETURN(proto::ChunkHeader h, ReadHeader(&cursor, limits_.max_header_bytes));
  const std::string where =
      absl::StrCat("chunk of tensor '", h.key(), "' (step ", h.step_id(), ")");
  if (h.abandoned()) {
    // The sender's step was cancelled midway: drop the partial tensor, keep the stream.
    if (!in_progress_ || h.step_id() != first_.step_id() || h.key() != first_.key()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, " abandons a tensor that is not being received"));
    }
    if (cursor.remaining() != 0 || h.length() != 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": an abandon notice carries bytes"));
    }
    in_progress_ = false;
    current_ = Received{};
    received_ = 0;
    ++abandoned_;
    last_abandoned_key_ = h.key();
    return false;
  }
  if (h.length() < 0 || h.offset() < 0 || h.total_bytes() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": negative offset, length or size"));
  }
  if (cursor.remaining() != h.length()) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, " declares ", h.length(), " payload bytes but carries ", cursor.remaining()));
  }
  if (!in_progress_) {
    if (h.offset() != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, " starts at offset ", h.offset(), " instead of 0"));
    }
    if (h.total_bytes() > limits_.max_tensor_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(where, " announces ", h.total_bytes(),
                                                     " bytes, over the limit of ",
                                                     limits_.max_tensor_bytes));
    }
    SLUICE_ASSIGN_OR_RETURN(DType dtype, DTypeFromProto(h.dtype()));
    TensorShape shape = ShapeFromProto(h.shape());
    if (!shape.IsFullyDefined()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, " has a shape that is not fully defined"));
    }
    const int64_t n = shape.num_elements();  // -1 when it overflows.
    int64_t bytes;
    if (n < 0 || __builtin_mul_overflow(n, static_cast<int64_t>(DTypeSize(dtype)), &bytes) ||
        bytes != static_cast<int64_t>(h.total_bytes())) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": total_bytes ", h.total_bytes(),
                                                     " does not match its dtype and shape"));
    }
    if (h.length() > h.total_bytes()) {
      return absl::InvalidArgumentError(absl::StrCat(where, " overruns the tensor: offset 0 + ",
                                                     h.length(), " > ", h.total_bytes()));
    }
    SLUICE_ASSIGN_OR_RETURN(Tensor buffer, Tensor::Allocate(dtype, shape));
    current_ = Received{h.step_id(), h.key(), std::move(buffer), h.resent()};  // Preallocated.
    first_ = h;
    received_ = 0;
    in_progress_ = true;
  } else if (h.step_id() != first_.step_id() || h.key() != first_.key() ||
             h.total_bytes() != first_.total_bytes() || h.dtype() != first_.dtype()) {
    return absl::InvalidArgumentError(absl::StrCat(where, " interleaves with unfinished tensor '",
                                                   first_.key(), "' (", received_, " of ",
                                                   first_.total_bytes(), " bytes received)"));
  } else if (h.offset() != received_) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, " at offset ", h.offset(), ", expected ", received_));
  }
  if (h.offset() + h.length() > first_.total_bytes()) {
    return absl::InvalidArgumentError(absl::StrCat(where, " overruns the tensor: offset ",
                                                   h.offset(), " + ", h.length(), " > ",
                                                   first_.total_bytes()));
  }
  if (h.length() > 0 &&
      !cursor.Read(static_cast<char*>(current_.tensor.raw_data()) + h.offset(), h.length())) {
    return absl::InvalidArgumentError(absl::StrCat(where, " is truncated"));
  }
  received_ += h.length();
  if (received_ == first_.total_bytes()) {
    in_progress_ = false;
    complete_ = true;
    return true;
  }
  return false;
}

ChunkAssembler::Received ChunkAssembler::Take() {
  complete_ = false;
  return std::move(current_);
}

absl::Status ChunkAssembler::Finish() const {
  if (!in_progress_) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("truncated tensor '", first_.key(), "' (step ", first_.step_id(),
                   "): stream ended after ", received_, " of ", first_.total_bytes(), " bytes"));
}

}  // namespace sluice
