#include "core/tensor_proto.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace sluice {

proto::DataType DTypeToProto(DType dtype) { return static_cast<proto::DataType>(dtype); }

absl::StatusOr<DType> DTypeFromProto(proto::DataType dtype) {
  DType d = static_cast<DType>(dtype);
  if (DTypeSize(d) == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid dtype value ", static_cast<int>(dtype)));
  }
  return d;
}

void ShapeToProto(const TensorShape& shape, proto::TensorShapeProto* out) {
  out->Clear();
  out->set_unknown_rank(shape.unknown_rank());
  for (int64_t d : shape.dims()) out->add_dim(d);
}

TensorShape ShapeFromProto(const proto::TensorShapeProto& proto) {
  if (proto.unknown_rank()) return TensorShape::UnknownRank();
  TensorShape s;
  for (int64_t d : proto.dim()) s.AddDim(d < 0 ? kUnknownDim : d);
  return s;
}

void TensorToProto(const Tensor& tensor, proto::TensorProto* out) {
  out->set_dtype(DTypeToProto(tensor.dtype()));
  ShapeToProto(tensor.shape(), out->mutable_shape());
  out->set_content(tensor.raw_data(), tensor.TotalBytes());
}

absl::StatusOr<Tensor> TensorFromProto(const proto::TensorProto& proto) {
  SLUICE_ASSIGN_OR_RETURN(DType dtype, DTypeFromProto(proto.dtype()));
  TensorShape shape = ShapeFromProto(proto.shape());
  if (!shape.IsFullyDefined()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor proto has a shape that is not fully defined: ", shape.DebugString()));
  }
  // The content is checked before anything is allocated: a 10-byte message announcing a shape
  // of 2^30 floats must not cost 4 GiB.
  SLUICE_ASSIGN_OR_RETURN(size_t bytes, Tensor::CheckedBytes(dtype, shape));
  if (proto.content().size() != bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor proto of ", DTypeName(dtype), shape.DebugString(), " needs ", bytes,
                     " bytes of content but has ", proto.content().size()));
  }
  SLUICE_ASSIGN_OR_RETURN(Tensor t, Tensor::Allocate(dtype, shape));
  if (t.TotalBytes() > 0) std::memcpy(t.raw_data(), proto.content().data(), t.TotalBytes());
  if (dtype == DType::kBool) {
    for (int64_t i = 0; i < t.num_elements(); ++i) {
      uint8_t byte = reinterpret_cast<const uint8_t*>(proto.content().data())[i];
      if (byte > 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("bool tensor proto has byte ", static_cast<int>(byte), " at element ", i));
      }
    }
  }
  return t;
}

}  // namespace sluice
