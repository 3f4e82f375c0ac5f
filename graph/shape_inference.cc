#include "graph/shape_inference.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace sluice {

InferenceContext::InferenceContext(const AttrMap* attrs, std::vector<DType> input_types,
                                   std::vector<TensorShape> input_shapes,
                                   std::vector<const Tensor*> input_values, int num_outputs)
    : attrs_(attrs),
      input_types_(std::move(input_types)),
      input_shapes_(std::move(input_shapes)),
      input_values_(std::move(input_values)),
      output_shapes_(num_outputs, TensorShape::UnknownRank()) {}

absl::Status UnknownShape(InferenceContext* c) { return absl::OkStatus(); }

absl::Status UnchangedShape(InferenceContext* c) {
  c->set_output(0, c->input_shape(0));
  return absl::OkStatus();
}

absl::Status ScalarShape(InferenceContext* c) {
  c->set_output(0, TensorShape());
  return absl::OkStatus();
}

absl::StatusOr<TensorShape> BroadcastShapes(const TensorShape& a, const TensorShape& b) {
  if (a.unknown_rank() || b.unknown_rank()) return TensorShape::UnknownRank();
  int rank = std::max(a.rank(), b.rank());
  TensorShape out;
  for (int i = 0; i < rank; ++i) {
    int ai = i - (rank - a.rank()), bi = i - (rank - b.rank());
    int64_t da = ai >= 0 ? a.dim(ai) : 1;
    int64_t db = bi >= 0 ? b.dim(bi) : 1;
    int64_t d;
    if (da == 1) {
      d = db;
    } else if (db == 1) {
      d = da;
    } else if (da == kUnknownDim) {
      d = db;  // db is known and not 1: a runtime mismatch is caught by the kernel.
    } else if (db == kUnknownDim || da == db) {
      d = da;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "Incompatible shapes for broadcasting: ", a.DebugString(), " vs ", b.DebugString()));
    }
    out.AddDim(d);
  }
  return out;
}

absl::Status BroadcastBinaryShape(InferenceContext* c) {
  absl::StatusOr<TensorShape> out = BroadcastShapes(c->input_shape(0), c->input_shape(1));
  if (!out.ok()) return out.status();
  c->set_output(0, *std::move(out));
  return absl::OkStatus();
}

}  // namespace sluice
