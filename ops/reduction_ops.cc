// Reductions over axes: Sum, Mean, Max, Min, Prod, Any, All; and ArgMax, ArgMin over one axis.
//
// The kernel collapses the input into alternating groups of kept and reduced dimensions (size-1
// dimensions dropped), so every reduction becomes one or more passes of "reduce the middle
// dimension of [outer, r, inner]"; each pass is one Eigen reduction evaluated on the device's
// thread pool. Mean is a Sum divided by the number of reduced elements.

#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/strings/str_join.h"
#include "core/status.h"
#include "graph/shape_inference.h"
#include "ops/kernel_util.h"
#include "ops/math_ops.h"
#include "ops/op_builder.h"

namespace sluice {
namespace {

using Eigen::DenseIndex;

// Which dimensions of `shape` the axes reduce; an error names an axis outside [-rank, rank).
absl::StatusOr<std::vector<bool>> ReducedDims(const std::vector<int64_t>& axes,
                                              const TensorShape& shape) {
  const int64_t rank = shape.rank();
  std::vector<bool> reduced(rank, false);
  for (int64_t axis : axes) {
    if (axis < -rank || axis >= rank) {
      return absl::InvalidArgumentError(
          absl::StrCat("reduction axis ", axis, " is out of range for input of shape ",
                       shape.DebugString(), " (valid axes are [", -rank, ", ", rank, "))"));
    }
    reduced[axis < 0 ? axis + rank : axis] = true;
  }
  return reduced;
}

TensorShape ReducedShape(const TensorShape& in, const std::vector<bool>& reduced, bool keep_dims) {
  TensorShape out;
  for (int i = 0; i < in.rank(); ++i) {
    if (!reduced[i]) {
      out.AddDim(in.dim(i));
    } else if (keep_dims) {
      out.AddDim(1);
    }
  }
  return out;
}

absl::Status ReductionShape(InferenceContext* c) {
  SLUICE_ASSIGN_OR_RETURN(bool keep_dims, c->GetAttr<bool>("keep_dims"));
  const TensorShape& in = c->input_shape(0);
  const Tensor* axis = c->input_value(1);
  if (axis == nullptr) {
    // Which axes go is unknown; with keep_dims the rank survives and size-1 dimensions stay 1.
    if (keep_dims && !in.unknown_rank()) {
      TensorShape out;
      for (int64_t d : in.dims()) out.AddDim(d == 1 ? 1 : kUnknownDim);
      c->set_output(0, out);
    }
    return absl::OkStatus();
  }
  SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> axes, TensorToInt64s(*axis, "reduction axis"));
  if (in.unknown_rank()) return absl::OkStatus();
  SLUICE_ASSIGN_OR_RETURN(std::vector<bool> reduced, ReducedDims(axes, in));
  c->set_output(0, ReducedShape(in, reduced, keep_dims));
  return absl::OkStatus();
}

// out[o, i] = reduce over j of in[o, j, i], choosing the Eigen form that vectorises best.
template <typename T, typename Reducer>
void ReduceMiddle(const OpKernelContext& ctx, const T* in, T* out, int64_t outer, int64_t r,
                  int64_t inner) {
  const int64_t work = outer * r * inner;
  const Eigen::array<DenseIndex, 1> axis0 = {0}, axis1 = {1};
  if (outer == 1 && inner == 1) {
    // A full reduction: Eigen splits it across the pool only with a rank-0 output.
    ConstTensorMapT<T, 1> im(in, r);
    Eigen::TensorMap<Eigen::Tensor<T, 0, Eigen::RowMajor, DenseIndex>> om(out);
    EvalExpr(ctx, om, im.reduce(axis0, Reducer()), work);
  } else if (inner == 1) {
    ConstTensorMapT<T, 2> im(in, outer, r);
    TensorMapT<T, 1> om(out, outer);
    EvalExpr(ctx, om, im.reduce(axis1, Reducer()), work);
  } else if (outer == 1) {
    ConstTensorMapT<T, 2> im(in, r, inner);
    TensorMapT<T, 1> om(out, inner);
    EvalExpr(ctx, om, im.reduce(axis0, Reducer()), work);
  } else {
    ConstTensorMapT<T, 3> im(in, outer, r, inner);
    TensorMapT<T, 2> om(out, outer, inner);
    EvalExpr(ctx, om, im.reduce(axis1, Reducer()), work);
  }
}

template <typename T, typename Reducer, bool kMean>
class ReductionOp : public OpKernel {
 public:
  explicit ReductionOp(const Node& node) : OpKernel(node), keep_dims_(Attr<bool>("keep_dims")) {}

  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> axes,
                            TensorToInt64s(ctx->input(1), "reduction axis"));
    SLUICE_ASSIGN_OR_RETURN(std::vector<bool> reduced, ReducedDims(axes, x.shape()));
    const TensorShape out_shape = ReducedShape(x.shape(), reduced, keep_dims_);

    // Collapse into alternating kept / reduced groups; size-1 dimensions change nothing.
    std::vector<int64_t> dims;
    std::vector<bool> is_reduced;
    int64_t count = 1;  // Elements reduced into each output element.
    for (int i = 0; i < x.rank(); ++i) {
      if (reduced[i]) count *= x.dim(i);
      if (x.dim(i) == 1) continue;
      if (!dims.empty() && is_reduced.back() == reduced[i]) {
        dims.back() *= x.dim(i);
      } else {
        dims.push_back(x.dim(i));
        is_reduced.push_back(reduced[i]);
      }
    }
    if (std::find(is_reduced.begin(), is_reduced.end(), true) == is_reduced.end()) {
      // Nothing is reduced (count is 1): the output is the input, reshaped, sharing its buffer.
      SLUICE_ASSIGN_OR_RETURN(Tensor same, x.Reshaped(out_shape));
      ctx->set_output(0, std::move(same));
      return absl::OkStatus();
    }
    SLUICE_ASSIGN_OR_RETURN(Tensor * y, ctx->allocate_output(0, out_shape));
    if (y->num_elements() == 0) return absl::OkStatus();

    // One pass per reduced group, last group first; intermediate results go to scratch tensors.
    Tensor src = x;
    while (true) {
      int j = static_cast<int>(dims.size()) - 1;
      while (!is_reduced[j]) --j;
      int64_t outer = 1, inner = 1;
      for (int i = 0; i < j; ++i) outer *= dims[i];
      for (int i = j + 1; i < static_cast<int>(dims.size()); ++i) inner *= dims[i];
      const int64_t r = dims[j];
      // Drop group j; the kept groups on either side of it now touch and merge.
      dims.erase(dims.begin() + j);
      is_reduced.erase(is_reduced.begin() + j);
      if (j > 0 && j < static_cast<int>(dims.size())) {
        dims[j - 1] *= dims[j];
        dims.erase(dims.begin() + j);
        is_reduced.erase(is_reduced.begin() + j);
      }
      const bool last = std::find(is_reduced.begin(), is_reduced.end(), true) == is_reduced.end();
      Tensor dst = last ? *y : Tensor(x.dtype(), TensorShape({outer * inner}));
      ReduceMiddle<T, Reducer>(*ctx, src.data<T>(), dst.data<T>(), outer, r, inner);
      if (last) break;
      src = std::move(dst);
    }
    if constexpr (kMean) {
      auto yf = y->flat<T>();
      EvalExpr(*ctx, yf, yf / yf.constant(static_cast<T>(count)));
    }
    return absl::OkStatus();
  }

 private:
  const bool keep_dims_;
};

template <typename T>
using SumOp = ReductionOp<T, Eigen::internal::SumReducer<T>, false>;
template <typename T>
using MeanOp = ReductionOp<T, Eigen::internal::SumReducer<T>, true>;
template <typename T>
using MaxOp = ReductionOp<T, Eigen::internal::MaxReducer<T>, false>;
template <typename T>
using MinOp = ReductionOp<T, Eigen::internal::MinReducer<T>, false>;
template <typename T>
using ProdOp = ReductionOp<T, Eigen::internal::ProdReducer<T>, false>;
template <typename T>
using AllOp = ReductionOp<T, Eigen::internal::AndReducer, false>;
template <typename T>
using AnyOp = ReductionOp<T, Eigen::internal::OrReducer, false>;

// ArgMax / ArgMin: the index of the first extreme element along one axis.

// The axis an ArgMax-style op reduces, in [0, rank); the error names the shape.
absl::StatusOr<int> ArgAxis(const Tensor& axis, const TensorShape& shape) {
  SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> axes, TensorToInt64s(axis, "dimension"));
  const int64_t rank = shape.rank();
  if (axes.size() != 1 || axes[0] < -std::max<int64_t>(rank, 1) ||
      axes[0] >= std::max<int64_t>(rank, 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dimension must be one axis in [", -rank, ", ", rank, ") for input of shape ",
                     shape.DebugString(), ", got ", absl::StrJoin(axes, ",")));
  }
  return static_cast<int>(axes[0] < 0 ? axes[0] + rank : axes[0]);
}

absl::Status ArgReductionShape(InferenceContext* c) {
  const TensorShape& in = c->input_shape(0);
  const Tensor* axis = c->input_value(1);
  if (axis == nullptr || in.unknown_rank()) return absl::OkStatus();
  SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> axes, TensorToInt64s(*axis, "dimension"));
  const int64_t rank = in.rank();
  if (axes.size() != 1 || axes[0] < -rank || axes[0] >= rank) {
    return InferenceContext::Error(absl::StrCat("dimension must be one axis in [", -rank, ", ",
                                                rank, ") for input of shape ", in.DebugString(),
                                                ", got ", absl::StrJoin(axes, ",")));
  }
  const int64_t a = axes[0] < 0 ? axes[0] + rank : axes[0];
  TensorShape out;
  for (int i = 0; i < rank; ++i) {
    if (i != a) out.AddDim(in.dim(i));
  }
  c->set_output(0, out);
  return absl::OkStatus();
}

template <typename T, bool kMax>
class ArgReductionOp : public OpKernel {
 public:
  explicit ArgReductionOp(const Node& node)
      : OpKernel(node), output_type_(Attr<DType>("output_type")) {}

  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    SLUICE_ASSIGN_OR_RETURN(int axis, ArgAxis(ctx->input(1), x.shape()));
    if (x.rank() == 0 || x.dim(axis) == 0) {
      return absl::InvalidArgumentError(absl::StrCat("cannot take the ", kMax ? "argmax" : "argmin",
                                                     " of an empty axis: input of shape ",
                                                     x.shape().DebugString(), ", axis ", axis));
    }
    TensorShape out_shape;
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < x.rank(); ++i) {
      if (i == axis) continue;
      out_shape.AddDim(x.dim(i));
      (i < axis ? outer : inner) *= x.dim(i);
    }
    SLUICE_ASSIGN_OR_RETURN(Tensor * y, ctx->allocate_output(0, out_shape));
    if (output_type_ == DType::kInt32) {
      Fill<int32_t>(x.data<T>(), outer, x.dim(axis), inner, y->data<int32_t>());
    } else {
      Fill<int64_t>(x.data<T>(), outer, x.dim(axis), inner, y->data<int64_t>());
    }
    return absl::OkStatus();
  }

 private:
  template <typename Index>
  static void Fill(const T* x, int64_t outer, int64_t r, int64_t inner, Index* y) {
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t i = 0; i < inner; ++i) {
        const T* p = x + o * r * inner + i;
        int64_t best = 0;
        for (int64_t j = 1; j < r; ++j) {
          if (kMax ? p[j * inner] > p[best * inner] : p[j * inner] < p[best * inner]) best = j;
        }
        y[o * inner + i] = static_cast<Index>(best);
      }
    }
  }

  const DType output_type_;
};

template <typename T>
using ArgMaxOp = ArgReductionOp<T, true>;
template <typename T>
using ArgMinOp = ArgReductionOp<T, false>;

absl::Status RegisterArgReductionDef(OpRegistry* ops, absl::string_view name,
                                     absl::string_view doc) {
  return ops->Register(OpDefBuilder(std::string(name))
                           .Input("input: T")
                           .Input("dimension: Tidx")
                           .Output("output: output_type")
                           .Attr("T: {float32, float64, int32, int64}")
                           .Attr("Tidx: {int32, int64} = int32")
                           .Attr("output_type: {int32, int64} = int64")
                           .Doc(doc)
                           .SetShapeFn(ArgReductionShape));
}

absl::Status RegisterReductionDef(OpRegistry* ops, absl::string_view name, absl::string_view types,
                                  absl::string_view doc) {
  return ops->Register(OpDefBuilder(std::string(name))
                           .Input("input: T")
                           .Input("axis: Tidx")
                           .Output("output: T")
                           .Attr(absl::StrCat("T: {", types, "}"))
                           .Attr("Tidx: {int32, int64} = int32")
                           .Attr("keep_dims: bool = false")
                           .Doc(doc)
                           .SetShapeFn(ReductionShape));
}

}  // namespace

namespace math_internal {

absl::Status RegisterReductionOps(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(RegisterReductionDef(
      ops, "Sum", "float32, float64, int32, int64",
      "Sum of `input` over the dimensions in `axis` (a scalar or vector; negative axes count "
      "from the end; repeats are ignored). keep_dims keeps reduced dimensions as size 1. "
      "An empty reduction gives 0."));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<SumOp, float, double, int32_t, int64_t>(kernels, "Sum")));

  SLUICE_RETURN_IF_ERROR(RegisterReductionDef(
      ops, "Mean", "float32, float64",
      "Mean of `input` over the dimensions in `axis`, like Sum; an empty reduction gives NaN."));
  SLUICE_RETURN_IF_ERROR((RegisterCpuKernels<MeanOp, float, double>(kernels, "Mean")));

  SLUICE_RETURN_IF_ERROR(RegisterReductionDef(
      ops, "Max", "float32, float64, int32, int64",
      "Maximum of `input` over the dimensions in `axis`, like Sum; an empty reduction gives "
      "the lowest value of the dtype (-inf for floats)."));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<MaxOp, float, double, int32_t, int64_t>(kernels, "Max")));

  SLUICE_RETURN_IF_ERROR(RegisterReductionDef(
      ops, "Min", "float32, float64, int32, int64",
      "Minimum of `input` over the dimensions in `axis`, like Sum; an empty reduction gives "
      "the largest value of the dtype (+inf for floats)."));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<MinOp, float, double, int32_t, int64_t>(kernels, "Min")));

  SLUICE_RETURN_IF_ERROR(RegisterReductionDef(
      ops, "Prod", "float32, float64, int32, int64",
      "Product of `input` over the dimensions in `axis`, like Sum; an empty reduction gives 1."));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<ProdOp, float, double, int32_t, int64_t>(kernels, "Prod")));

  SLUICE_RETURN_IF_ERROR(RegisterReductionDef(
      ops, "All", "bool",
      "Logical and of `input` over the dimensions in `axis`, like Sum; empty gives true."));
  SLUICE_RETURN_IF_ERROR((RegisterCpuKernels<AllOp, bool>(kernels, "All")));
  SLUICE_RETURN_IF_ERROR(RegisterReductionDef(
      ops, "Any", "bool",
      "Logical or of `input` over the dimensions in `axis`, like Sum; empty gives false."));
  SLUICE_RETURN_IF_ERROR((RegisterCpuKernels<AnyOp, bool>(kernels, "Any")));

  SLUICE_RETURN_IF_ERROR(RegisterArgReductionDef(
      ops, "ArgMax",
      "The index of the largest element along axis `dimension` (the first of ties); the "
      "output drops that axis. An empty axis is an error."));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<ArgMaxOp, float, double, int32_t, int64_t>(kernels, "ArgMax")));
  SLUICE_RETURN_IF_ERROR(RegisterArgReductionDef(
      ops, "ArgMin", "The index of the smallest element along axis `dimension`, like ArgMax."));
  return RegisterCpuKernels<ArgMinOp, float, double, int32_t, int64_t>(kernels, "ArgMin");
}

}  // namespace math_internal

namespace ops {
namespace {

Output Reduce(const Scope& scope, absl::string_view op, Input x, Input axis, bool keep_dims,
              SourceLocation loc) {
  return BuildOp(scope, op, {x, axis}, {{"keep_dims", AttrValue(keep_dims)}}, loc);
}

Input AxesInput(const std::vector<int64_t>& axes) {
  return Input(Tensor::FromVector<int64_t>(axes));
}

}  // namespace

Output ReduceSum(const Scope& scope, Input x, Input axis, bool keep_dims, SourceLocation loc) {
  return Reduce(scope, "Sum", x, axis, keep_dims, loc);
}
Output ReduceSum(const Scope& scope, Input x, std::initializer_list<int64_t> axes, bool keep_dims,
                 SourceLocation loc) {
  return Reduce(scope, "Sum", x, AxesInput(axes), keep_dims, loc);
}
Output ReduceSum(const Scope& scope, Input x, const std::vector<int64_t>& axes, bool keep_dims,
                 SourceLocation loc) {
  return Reduce(scope, "Sum", x, AxesInput(axes), keep_dims, loc);
}

Output ReduceMean(const Scope& scope, Input x, Input axis, bool keep_dims, SourceLocation loc) {
  return Reduce(scope, "Mean", x, axis, keep_dims, loc);
}
Output ReduceMean(const Scope& scope, Input x, std::initializer_list<int64_t> axes, bool keep_dims,
                  SourceLocation loc) {
  return Reduce(scope, "Mean", x, AxesInput(axes), keep_dims, loc);
}
Output ReduceMean(const Scope& scope, Input x, const std::vector<int64_t>& axes, bool keep_dims,
                  SourceLocation loc) {
  return Reduce(scope, "Mean", x, AxesInput(axes), keep_dims, loc);
}

Output ReduceMax(const Scope& scope, Input x, Input axis, bool keep_dims, SourceLocation loc) {
  return Reduce(scope, "Max", x, axis, keep_dims, loc);
}
Output ReduceMax(const Scope& scope, Input x, std::initializer_list<int64_t> axes, bool keep_dims,
                 SourceLocation loc) {
  return Reduce(scope, "Max", x, AxesInput(axes), keep_dims, loc);
}
Output ReduceMax(const Scope& scope, Input x, const std::vector<int64_t>& axes, bool keep_dims,
                 SourceLocation loc) {
  return Reduce(scope, "Max", x, AxesInput(axes), keep_dims, loc);
}

Output ReduceMin(const Scope& scope, Input x, Input axis, bool keep_dims, SourceLocation loc) {
  return Reduce(scope, "Min", x, axis, keep_dims, loc);
}
Output ReduceMin(const Scope& scope, Input x, std::initializer_list<int64_t> axes, bool keep_dims,
                 SourceLocation loc) {
  return Reduce(scope, "Min", x, AxesInput(axes), keep_dims, loc);
}

Output ReduceProd(const Scope& scope, Input x, Input axis, bool keep_dims, SourceLocation loc) {
  return Reduce(scope, "Prod", x, axis, keep_dims, loc);
}
Output ReduceProd(const Scope& scope, Input x, std::initializer_list<int64_t> axes, bool keep_dims,
                  SourceLocation loc) {
  return Reduce(scope, "Prod", x, AxesInput(axes), keep_dims, loc);
}

Output ReduceAny(const Scope& scope, Input x, Input axis, bool keep_dims, SourceLocation loc) {
  return Reduce(scope, "Any", x, axis, keep_dims, loc);
}
Output ReduceAny(const Scope& scope, Input x, std::initializer_list<int64_t> axes, bool keep_dims,
                 SourceLocation loc) {
  return Reduce(scope, "Any", x, AxesInput(axes), keep_dims, loc);
}

Output ReduceAll(const Scope& scope, Input x, Input axis, bool keep_dims, SourceLocation loc) {
  return Reduce(scope, "All", x, axis, keep_dims, loc);
}
Output ReduceAll(const Scope& scope, Input x, std::initializer_list<int64_t> axes, bool keep_dims,
                 SourceLocation loc) {
  return Reduce(scope, "All", x, AxesInput(axes), keep_dims, loc);
}

Output ArgMax(const Scope& scope, Input x, int64_t axis, DType output_type, SourceLocation loc) {
  return BuildOp(scope, "ArgMax", {x, Input(Tensor::Scalar<int64_t>(axis))},
                 {{"output_type", AttrValue(output_type)}}, loc);
}
Output ArgMin(const Scope& scope, Input x, int64_t axis, DType output_type, SourceLocation loc) {
  return BuildOp(scope, "ArgMin", {x, Input(Tensor::Scalar<int64_t>(axis))},
                 {{"output_type", AttrValue(output_type)}}, loc);
}

}  // namespace ops
}  // namespace sluice
