// Conversion between Tensor/TensorShape/DType and their protobuf wire forms. Decoding validates
// everything (dtype, fully defined non-negative shape, content length), so a malformed message
// becomes an InvalidArgument error, never a bad tensor. Thread-safe: stateless.
//
//   proto::TensorProto p;
//   TensorToProto(t, &p);
//   SLUICE_ASSIGN_OR_RETURN(Tensor back, TensorFromProto(p));
#ifndef SLUICE_CORE_TENSOR_PROTO_H_
#define SLUICE_CORE_TENSOR_PROTO_H_

#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "core/tensor.pb.h"

namespace sluice {

proto::DataType DTypeToProto(DType dtype);
absl::StatusOr<DType> DTypeFromProto(proto::DataType dtype);

void ShapeToProto(const TensorShape& shape, proto::TensorShapeProto* out);
TensorShape ShapeFromProto(const proto::TensorShapeProto& proto);

void TensorToProto(const Tensor& tensor, proto::TensorProto* out);
absl::StatusOr<Tensor> TensorFromProto(const proto::TensorProto& proto);

}  // namespace sluice

#endif  // SLUICE_CORE_TENSOR_PROTO_H_
