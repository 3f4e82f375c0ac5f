#include "ops/kernel_util.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/status.h"

namespace sluice {

absl::Status CheckRank(const Tensor& t, int rank, absl::string_view what) {
  if (t.rank() == rank) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(what, ": expected rank ", rank, ", got shape ", t.shape().DebugString()));
}

absl::StatusOr<std::vector<int64_t>> TensorToInt64s(const Tensor& t, absl::string_view what) {
  if (t.rank() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must be a scalar or vector, got shape ", t.shape().DebugString()));
  }
  return IndexValues(t, what);
}

absl::StatusOr<std::vector<int64_t>> IndexValues(const Tensor& t, absl::string_view what) {
  std::vector<int64_t> out(t.num_elements());
  if (t.dtype() == DType::kInt32) {
    for (int64_t i = 0; i < t.num_elements(); ++i) out[i] = t.data<int32_t>()[i];
  } else if (t.dtype() == DType::kInt64) {
    for (int64_t i = 0; i < t.num_elements(); ++i) out[i] = t.data<int64_t>()[i];
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must be int32 or int64, got ", DTypeName(t.dtype())));
  }
  return out;
}

absl::StatusOr<int> CanonicalAxis(int64_t axis, int rank) {
  if (axis < -rank || axis >= rank) {
    return absl::InvalidArgumentError(absl::StrCat("axis ", axis, " is out of range for rank ",
                                                   rank, " (expected ", -rank, " <= axis < ", rank,
                                                   ")"));
  }
  return static_cast<int>(axis < 0 ? axis + rank : axis);
}

int64_t DimProduct(const TensorShape& s, int begin, int end) {
  int64_t n = 1;
  for (int i = begin; i < end; ++i) n *= s.dim(i);
  return n;
}

std::string DimsString(const std::vector<int64_t>& dims) {
  return absl::StrCat("[", absl::StrJoin(dims, ","), "]");
}

absl::StatusOr<Tensor*> ForwardInputOrAllocateOutput(OpKernelContext* ctx, int input, int output,
                                                     const TensorShape& shape) {
  const Tensor& in = ctx->input(input);
  if (in.RefCountIsOne() && in.dtype() == ctx->node().output_type(output) && in.shape() == shape) {
    ctx->set_output(output, in);
    return &ctx->outputs()[output];
  }
  return ctx->allocate_output(output, shape);
}

absl::StatusOr<BroadcastPlan> PlanBroadcast(const TensorShape& x, const TensorShape& y) {
  BroadcastPlan plan;
  const int rank = std::max(x.rank(), y.rank());
  // Pattern of the previous kept dimension: 0 no broadcast, 1 x broadcasts, 2 y broadcasts.
  int last = -1;
  for (int i = 0; i < rank; ++i) {
    const int xi = i - (rank - x.rank()), yi = i - (rank - y.rank());
    const int64_t xd = xi >= 0 ? x.dim(xi) : 1;
    const int64_t yd = yi >= 0 ? y.dim(yi) : 1;
    int pattern;
    if (xd == yd) {
      pattern = 0;
    } else if (xd == 1) {
      pattern = 1;
    } else if (yd == 1) {
      pattern = 2;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "Incompatible shapes for broadcasting: ", x.DebugString(), " vs ", y.DebugString()));
    }
    const int64_t od = xd == 1 ? yd : xd;
    plan.output_shape.AddDim(od);
    if (xd == 1 && yd == 1) continue;  // Size-1 dimensions change nothing.
    if (pattern == last) {
      plan.x_dims.back() *= xd;
      plan.y_dims.back() *= yd;
      plan.out_dims.back() *= od;
      if (pattern == 1) plan.x_bcast.back() = plan.out_dims.back();
      if (pattern == 2) plan.y_bcast.back() = plan.out_dims.back();
      continue;
    }
    plan.x_dims.push_back(xd);
    plan.y_dims.push_back(yd);
    plan.out_dims.push_back(od);
    plan.x_bcast.push_back(pattern == 1 ? od : 1);
    plan.y_bcast.push_back(pattern == 2 ? od : 1);
    last = pattern;
  }
  const int64_t out_n = plan.output_shape.num_elements();
  if (x.num_elements() == out_n && y.num_elements() == out_n) {
    plan.kind = BroadcastPlan::Kind::kSameSize;
  } else if (x.num_elements() == 1) {
    plan.kind = BroadcastPlan::Kind::kScalarX;
  } else if (y.num_elements() == 1) {
    plan.kind = BroadcastPlan::Kind::kScalarY;
  } else {
    plan.kind = BroadcastPlan::Kind::kGeneral;
  }
  return plan;
}

absl::Status OutputShapeFromInput(InferenceContext* c, int i, int output) {
  if (const Tensor* v = c->input_value(i)) {
    if (v->rank() != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("shape must be a vector, got shape ", v->shape().DebugString()));
    }
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> dims, TensorToInt64s(*v, "shape"));
    c->set_output(output, TensorShape(absl::Span<const int64_t>(dims)));
    return absl::OkStatus();
  }
  const TensorShape& s = c->input_shape(i);
  if (s.rank() == 1 && s.dim(0) >= 0) {
    c->set_output(output, TensorShape(std::vector<int64_t>(s.dim(0), kUnknownDim)));
  } else {
    c->set_output(output, TensorShape::UnknownRank());
  }
  return absl::OkStatus();
}

}  // namespace sluice
