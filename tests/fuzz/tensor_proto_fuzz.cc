// Fuzzes TensorProto decoding (core/tensor_proto.h), which every feed, fetch, Const attribute
// and checkpoint goes through. The input is a serialised proto::TensorProto.
//
// Checked beyond "no crash": a tensor that decodes encodes back to a proto that decodes to the
// same dtype, shape and bytes.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/tensor.h"
#include "core/tensor.pb.h"
#include "core/tensor_proto.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sluice::proto::TensorProto proto;
  if (!proto.ParseFromArray(data, static_cast<int>(size))) return 0;
  (void)sluice::DTypeFromProto(proto.dtype());
  (void)sluice::ShapeFromProto(proto.shape()).DebugString();
  absl::StatusOr<sluice::Tensor> t = sluice::TensorFromProto(proto);
  if (!t.ok()) return 0;
  sluice::proto::TensorProto again;
  sluice::TensorToProto(*t, &again);
  absl::StatusOr<sluice::Tensor> back = sluice::TensorFromProto(again);
  if (!back.ok() || back->dtype() != t->dtype() || back->shape() != t->shape() ||
      back->TotalBytes() != t->TotalBytes() ||
      (t->TotalBytes() > 0 && std::memcmp(back->raw_data(), t->raw_data(), t->TotalBytes()) != 0)) {
    std::fprintf(stderr, "tensor_proto_fuzz: %s does not survive a round trip: %s\n",
                 t->DebugString().c_str(),
                 back.ok() ? back->DebugString().c_str() : back.status().ToString().c_str());
    std::abort();
  }
  return 0;
}
