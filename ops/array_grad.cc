// Gradient functions of the array and base families, the NoGradient markers of ops that pass no
// gradient, and the shape helpers every family's gradients use.

#include <numeric>
#include <optional>
#include <vector>

#include "core/status.h"
#include "ops/array_ops.h"
#include "ops/base_ops.h"
#include "ops/grad_helper_ops.h"
#include "ops/gradient_fns.h"

namespace sluice {
namespace grad_internal {

Output ShapeOf(const Scope& scope, const Output& x) {
  if (!x.valid()) return x;
  const TensorShape& s = x.shape();
  if (s.IsFullyDefined()) return ops::Const(scope, Tensor::FromVector<int64_t>(s.dims()));
  return ops::Shape(scope, x);
}

Output UnbroadcastGrad(const Scope& scope, const Output& grad, const Output& x,
                       const Output& other) {
  if (!grad.valid() || !x.valid() || !other.valid()) return Output();
  // x was not repeated when, aligned from the right, each of its dimensions is known and not 1,
  // or faces a dimension of `other` known to be 1 or missing.
  const TensorShape& xs = x.shape();
  const TensorShape& os = other.shape();
  bool unchanged = !xs.unknown_rank() && !os.unknown_rank() && xs.rank() >= os.rank();
  for (int i = 0; unchanged && i < xs.rank(); ++i) {
    const int oi = i - (xs.rank() - os.rank());
    const int64_t xd = xs.dim(i);
    unchanged = (xd != kUnknownDim && xd != 1) || oi < 0 || os.dim(oi) == 1;
  }
  if (unchanged) return grad;
  return ops::ReduceToShape(scope, grad, ShapeOf(scope, x));
}

}  // namespace grad_internal

namespace {

using grad_internal::ShapeOf;
using Grads = std::vector<Output>;

absl::Status IdentityGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  *dx = {dy[0]};
  return absl::OkStatus();
}

// Sleep's gradient waits as long as the op says (a backward of known duration).
absl::Status SleepGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  SLUICE_ASSIGN_OR_RETURN(int64_t micros, op.GetAttr<int64_t>("gradient_microseconds"));
  *dx = {ops::Sleep(s, dy[0], micros, 0)};
  return absl::OkStatus();
}

absl::Status AddNGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  dx->assign(op.num_inputs(), dy[0]);
  return absl::OkStatus();
}

absl::Status ReshapeGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  *dx = {ops::Reshape(s, dy[0], ShapeOf(s, OpInput(op, 0))), Output()};
  return absl::OkStatus();
}

// The integers of a Const node's value, or nullopt when `o` is computed.
std::optional<std::vector<int64_t>> ConstInts(const Output& o) {
  if (o.node()->op() != "Const") return std::nullopt;
  absl::StatusOr<Tensor> t = o.node()->GetAttr<Tensor>("value");
  if (!t.ok() || t->rank() > 1) return std::nullopt;
  std::vector<int64_t> v(t->num_elements());
  for (int64_t i = 0; i < t->num_elements(); ++i) {
    if (t->dtype() == DType::kInt32) {
      v[i] = t->data<int32_t>()[i];
    } else if (t->dtype() == DType::kInt64) {
      v[i] = t->data<int64_t>()[i];
    } else {
      return std::nullopt;
    }
  }
  return v;
}

absl::Status TransposeGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  const Output perm = OpInput(op, 1);
  Input inverse = Input(Output());
  std::optional<std::vector<int64_t>> p = ConstInts(perm);
  bool valid = p.has_value();
  std::vector<int64_t> inv(valid ? p->size() : 0, -1);
  for (size_t i = 0; valid && i < p->size(); ++i) {
    const int64_t v = (*p)[i];
    valid = v >= 0 && v < static_cast<int64_t>(p->size()) && inv[v] < 0;
    if (valid) inv[v] = static_cast<int64_t>(i);
  }
  if (valid) {
    inverse = Input(Tensor::FromVector<int64_t>(inv));
  } else {
    inverse = ops::InvertPermutation(s, perm);  // Reports a bad permutation at run time.
  }
  *dx = {ops::Transpose(s, dy[0], inverse), Output()};
  return absl::OkStatus();
}

// Each input's gradient is the slice of dy where that input went.
absl::Status ConcatGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  const int n = op.num_inputs() - 1;
  const Output axis = OpInput(op, n);
  dx->assign(op.num_inputs(), Output());
  std::vector<Output> values;
  for (int i = 0; i < n; ++i) values.push_back(OpInput(op, i));
  // Offsets known while building: every shape known and the axis constant.
  std::optional<std::vector<int64_t>> axis_v = ConstInts(axis);
  bool known = axis_v.has_value() && axis_v->size() == 1;
  for (const Output& v : values) known = known && v.shape().IsFullyDefined();
  if (known) {
    const int64_t rank = values[0].shape().rank();
    int64_t a = (*axis_v)[0];
    if (a < 0) a += rank;
    int64_t offset = 0;
    for (int i = 0; i < n; ++i) {
      std::vector<int64_t> begin(rank, 0);
      begin[a] = offset;
      offset += values[i].shape().dim(a);
      (*dx)[i] = ops::Slice(s, dy[0], Tensor::FromVector<int64_t>(begin),
                            Tensor::FromVector<int64_t>(values[i].shape().dims()));
    }
    return absl::OkStatus();
  }
  std::vector<Output> shapes;
  for (const Output& v : values) shapes.push_back(ops::Shape(s, v));
  std::vector<Output> offsets = ops::ConcatOffset(s, axis, shapes);
  if (static_cast<int>(offsets.size()) != n) return s.status();
  for (int i = 0; i < n; ++i) (*dx)[i] = ops::Slice(s, dy[0], offsets[i], shapes[i]);
  return absl::OkStatus();
}

// Outputs without a gradient contribute zeros to the concatenation.
absl::Status SplitGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  std::vector<Output> parts;
  for (int i = 0; i < op.num_outputs(); ++i) {
    parts.push_back(dy[i].valid() ? dy[i] : ops::ZerosLike(s, OpOutput(op, i)));
  }
  *dx = {Output(), ops::Concat(s, parts, OpInput(op, 0))};
  return absl::OkStatus();
}

absl::Status SliceGradFn(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  const Output x = OpInput(op, 0);
  *dx = {ops::SliceGrad(s, ShapeOf(s, x), OpInput(op, 1), dy[0]), Output(), Output()};
  return absl::OkStatus();
}

// Only casts between floating types carry a gradient.
absl::Status CastGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  const DType src = OpInput(op, 0).dtype();
  if (IsFloating(src) && IsFloating(op.output_type(0))) {
    *dx = {ops::Cast(s, dy[0], src)};
  } else {
    *dx = {Output()};
  }
  return absl::OkStatus();
}

// Every output element is `value`: its gradient is the sum of dy.
absl::Status FillGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  *dx = {Output(), ops::ReduceToShape(s, dy[0], ShapeOf(s, OpInput(op, 1)))};
  return absl::OkStatus();
}

// The dense gradient: dy added into zeros of params' shape at the gathered positions. (A sparse
// form, row indices + values, is what parameter-server training will want.)
absl::Status GatherGradFn(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  const Output params = OpInput(op, 0);
  *dx = {ops::GatherGrad(s, dy[0], OpInput(op, 1), ShapeOf(s, params), OpInput(op, 2)), Output(),
         Output()};
  return absl::OkStatus();
}

absl::Status GatherNdGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  *dx = {ops::ScatterNd(s, OpInput(op, 1), dy[0], ShapeOf(s, OpInput(op, 0))), Output()};
  return absl::OkStatus();
}

absl::Status ScatterNdGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  *dx = {Output(), ops::GatherNd(s, dy[0], OpInput(op, 0)), Output()};
  return absl::OkStatus();
}

// Each data row went to segment ids[j]: its gradient is that segment's gradient.
absl::Status UnsortedSegmentSumGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  *dx = {ops::Gather(s, dy[0], OpInput(op, 1), Tensor::Scalar<int32_t>(0)), Output(), Output()};
  return absl::OkStatus();
}

// Each data[m] row went to merged[indices[m][i]]: its gradient is that row of dy (as
// TensorFlow, a row overwritten by a later input still gets it).
absl::Status DynamicStitchGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  const int n = op.num_inputs() / 2;
  dx->assign(op.num_inputs(), Output());
  for (int m = 0; m < n; ++m) {
    (*dx)[n + m] = ops::Gather(s, dy[0], OpInput(op, m), Tensor::Scalar<int32_t>(0));
  }
  return absl::OkStatus();
}

absl::Status DynamicPartitionGradFn(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  std::vector<Output> grads;
  for (int p = 0; p < op.num_outputs(); ++p) {
    grads.push_back(dy[p].valid() ? dy[p] : ops::ZerosLike(s, OpOutput(op, p)));
  }
  const Output data = OpInput(op, 0);
  *dx = {ops::DynamicPartitionGrad(s, OpInput(op, 1), ShapeOf(s, data), grads), Output()};
  return absl::OkStatus();
}

absl::Status TileGradFn(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  *dx = {ops::TileGrad(s, dy[0], OpInput(op, 1), ShapeOf(s, OpInput(op, 0))), Output()};
  return absl::OkStatus();
}

absl::Status PadGradFn(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  *dx = {ops::PadGrad(s, dy[0], OpInput(op, 1)), Output(), Output()};
  return absl::OkStatus();
}

}  // namespace

absl::Status RegisterArrayGradients(GradientRegistry* r) {
  SLUICE_RETURN_IF_ERROR(r->Register("Identity", IdentityGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("Sleep", SleepGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("AddN", AddNGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("Reshape", ReshapeGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("Transpose", TransposeGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("Concat", ConcatGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("Split", SplitGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("Slice", SliceGradFn));
  SLUICE_RETURN_IF_ERROR(r->Register("Cast", CastGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("Fill", FillGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("Gather", GatherGradFn));
  SLUICE_RETURN_IF_ERROR(r->Register("GatherNd", GatherNdGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("ScatterNd", ScatterNdGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("UnsortedSegmentSum", UnsortedSegmentSumGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("DynamicStitch", DynamicStitchGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("DynamicPartition", DynamicPartitionGradFn));
  SLUICE_RETURN_IF_ERROR(r->Register("Tile", TileGradFn));
  SLUICE_RETURN_IF_ERROR(r->Register("Pad", PadGradFn));
  // Ops whose outputs do not depend differentiably on their inputs (or that have none).
  for (const char* op : {"Const",
                         "Placeholder",
                         "NoOp",
                         "ZerosLike",
                         "OnesLike",
                         "StopGradient",
                         "Shape",
                         "InvertPermutation",
                         "ConcatOffset",
                         "Variable",
                         "Assign",
                         "AssignAdd",
                         "AssignSub",
                         "RandomUniform",
                         "RandomNormal",
                         "TruncatedNormal",
                         "RandomShuffle",
                         "OneHot",
                         "InTopK",
                         "ScatterAdd",
                         "ScatterSub",
                         "ScatterUpdate",
                         "DynamicPartitionGrad",
                         "Range"}) {
    SLUICE_RETURN_IF_ERROR(r->RegisterNoGradient(op));
  }
  return absl::OkStatus();
}

}  // namespace sluice
