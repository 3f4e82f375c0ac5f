// Elementwise math kernels. Binary ops take a broadcast plan (ops/kernel_util.h) and pick the
// cheapest evaluation: plain elementwise, scalar against tensor, an Eigen broadcast on the
// collapsed rank (1 to 5), or a strided loop beyond that. The scalar functions are Eigen's own
// vectorised functors, so every path computes the same values.

#include "ops/math_ops.h"

#include <cstdint>

#include "core/status.h"
#include "graph/shape_inference.h"
#include "ops/kernel_util.h"
#include "ops/op_builder.h"

namespace sluice {
namespace {

using Eigen::DenseIndex;

// Elementwise kernels are cheap when their output is known to be small: the executor then runs
// them inline instead of scheduling them.
bool SmallKnownOutput(const Node& node) {
  const TensorShape& s = node.output_shape(0);
  return s.IsFullyDefined() && s.num_elements() <= kInlineEvalElements;
}

// ---------------------------------------------------------------------------------------------
// Unary ops: y = F(x), kernels from ops/kernel_util.h.

template <typename T>
using NegOp = UnaryElementwiseOp<T, Eigen::internal::scalar_opposite_op<T>>;
template <typename T>
using ExpOp = UnaryElementwiseOp<T, Eigen::internal::scalar_exp_op<T>>;
template <typename T>
using LogOp = UnaryElementwiseOp<T, Eigen::internal::scalar_log_op<T>>;
template <typename T>
using SquareOp = UnaryElementwiseOp<T, Eigen::internal::scalar_square_op<T>>;
template <typename T>
using SqrtOp = UnaryElementwiseOp<T, Eigen::internal::scalar_sqrt_op<T>>;

absl::Status RegisterUnaryDef(OpRegistry* ops, absl::string_view name, absl::string_view types,
                              absl::string_view doc) {
  return ops->Register(OpDefBuilder(std::string(name))
                           .Input("x: T")
                           .Output("y: T")
                           .Attr(absl::StrCat("T: {", types, "}"))
                           .Doc(doc)
                           .SetShapeFn(UnchangedShape));
}

absl::Status RegisterUnaryOps(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(
      RegisterUnaryDef(ops, "Neg", "float32, float64, int32, int64", "y = -x elementwise."));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<NegOp, float, double, int32_t, int64_t>(kernels, "Neg")));

  SLUICE_RETURN_IF_ERROR(RegisterUnaryDef(ops, "Exp", "float32, float64", "y = e^x elementwise."));
  SLUICE_RETURN_IF_ERROR((RegisterCpuKernels<ExpOp, float, double>(kernels, "Exp")));

  SLUICE_RETURN_IF_ERROR(RegisterUnaryDef(ops, "Log", "float32, float64",
                                          "y = ln(x) elementwise; -inf at 0, NaN below."));
  SLUICE_RETURN_IF_ERROR((RegisterCpuKernels<LogOp, float, double>(kernels, "Log")));

  SLUICE_RETURN_IF_ERROR(
      RegisterUnaryDef(ops, "Square", "float32, float64, int32, int64", "y = x * x elementwise."));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<SquareOp, float, double, int32_t, int64_t>(kernels, "Square")));

  SLUICE_RETURN_IF_ERROR(
      RegisterUnaryDef(ops, "Sqrt", "float32, float64", "y = sqrt(x) elementwise; NaN below 0."));
  SLUICE_RETURN_IF_ERROR((RegisterCpuKernels<SqrtOp, float, double>(kernels, "Sqrt")));
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Binary ops: z = F(x, y) with numpy broadcasting.

// Eigen broadcast of the collapsed views, for a compile-time rank N.
template <typename T, typename F, int N>
void BroadcastEval(OpKernelContext* ctx, const BroadcastPlan& p, const Tensor& x, const Tensor& y,
                   Tensor* z) {
  Eigen::DSizes<DenseIndex, N> xd, yd, zd;
  Eigen::array<DenseIndex, N> xb, yb;
  for (int i = 0; i < N; ++i) {
    xd[i] = p.x_dims[i];
    yd[i] = p.y_dims[i];
    zd[i] = p.out_dims[i];
    xb[i] = p.x_bcast[i];
    yb[i] = p.y_bcast[i];
  }
  ConstTensorMapT<T, N> xm(x.data<T>(), xd);
  ConstTensorMapT<T, N> ym(y.data<T>(), yd);
  TensorMapT<T, N> zm(z->data<T>(), zd);
  EvalExpr(*ctx, zm, xm.broadcast(xb).binaryExpr(ym.broadcast(yb), F()));
}

// Any collapsed rank: an odometer over the output with stride 0 along broadcast dimensions.
template <typename T, typename F>
void StridedEval(const BroadcastPlan& p, const Tensor& x, const Tensor& y, Tensor* z) {
  const int rank = static_cast<int>(p.out_dims.size());
  std::vector<int64_t> xs(rank), ys(rank), index(rank, 0);
  int64_t xstride = 1, ystride = 1;
  for (int i = rank - 1; i >= 0; --i) {
    xs[i] = p.x_bcast[i] == 1 ? xstride : 0;
    ys[i] = p.y_bcast[i] == 1 ? ystride : 0;
    xstride *= p.x_dims[i];
    ystride *= p.y_dims[i];
  }
  const T* xp = x.data<T>();
  const T* yp = y.data<T>();
  T* zp = z->data<T>();
  const F f;
  int64_t xo = 0, yo = 0;
  const int64_t n = z->num_elements();
  for (int64_t k = 0; k < n; ++k) {
    zp[k] = f(xp[xo], yp[yo]);
    for (int i = rank - 1; i >= 0; --i) {
      xo += xs[i];
      yo += ys[i];
      if (++index[i] < p.out_dims[i]) break;
      xo -= xs[i] * index[i];
      yo -= ys[i] * index[i];
      index[i] = 0;
    }
  }
}

template <typename T, typename F>
class BinaryOp : public OpKernel {
 public:
  explicit BinaryOp(const Node& node) : OpKernel(node), cheap_(SmallKnownOutput(node)) {}

  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& y = ctx->input(1);
    // Hot path: identical shapes need no plan.
    if (x.shape() == y.shape()) {
      SLUICE_ASSIGN_OR_RETURN(Tensor * z, ForwardEither(ctx, x.shape()));
      EvalExpr(*ctx, z->flat<T>(), x.flat<T>().binaryExpr(y.flat<T>(), F()));
      return absl::OkStatus();
    }
    SLUICE_ASSIGN_OR_RETURN(BroadcastPlan p, PlanBroadcast(x.shape(), y.shape()));
    SLUICE_ASSIGN_OR_RETURN(Tensor * z, ForwardEither(ctx, p.output_shape));
    if (z->num_elements() == 0) return absl::OkStatus();
    auto zf = z->flat<T>();
    switch (p.kind) {
      case BroadcastPlan::Kind::kSameSize:
        EvalExpr(*ctx, zf, x.flat<T>().binaryExpr(y.flat<T>(), F()));
        return absl::OkStatus();
      case BroadcastPlan::Kind::kScalarX:
        EvalExpr(*ctx, zf, zf.constant(x.scalar<T>()).binaryExpr(y.flat<T>(), F()));
        return absl::OkStatus();
      case BroadcastPlan::Kind::kScalarY:
        EvalExpr(*ctx, zf, x.flat<T>().binaryExpr(zf.constant(y.scalar<T>()), F()));
        return absl::OkStatus();
      case BroadcastPlan::Kind::kGeneral:
        break;
    }
    switch (p.out_dims.size()) {
      case 2:
        BroadcastEval<T, F, 2>(ctx, p, x, y, z);
        break;
      case 3:
        BroadcastEval<T, F, 3>(ctx, p, x, y, z);
        break;
      case 4:
        BroadcastEval<T, F, 4>(ctx, p, x, y, z);
        break;
      case 5:
        BroadcastEval<T, F, 5>(ctx, p, x, y, z);
        break;
      default:  // Rank 1 is always kSameSize or scalar; 6+ alternating patterns are rare.
        StridedEval<T, F>(p, x, y, z);
    }
    return absl::OkStatus();
  }
  bool IsExpensive() const override { return !cheap_; }

 private:
  // The output may take over either input's buffer when that input already has its shape.
  static absl::StatusOr<Tensor*> ForwardEither(OpKernelContext* ctx, const TensorShape& shape) {
    if (ctx->input(0).shape() == shape) return ForwardInputOrAllocateOutput(ctx, 0, 0, shape);
    if (ctx->input(1).shape() == shape) return ForwardInputOrAllocateOutput(ctx, 1, 0, shape);
    return ctx->allocate_output(0, shape);
  }

  const bool cheap_;
};

template <typename T>
using AddOp = BinaryOp<T, Eigen::internal::scalar_sum_op<T, T>>;
template <typename T>
using SubOp = BinaryOp<T, Eigen::internal::scalar_difference_op<T, T>>;
template <typename T>
using MulOp = BinaryOp<T, Eigen::internal::scalar_product_op<T, T>>;
template <typename T>
using DivOp = BinaryOp<T, Eigen::internal::scalar_quotient_op<T, T>>;
template <typename T>
using MaximumOp = BinaryOp<T, Eigen::internal::scalar_max_op<T, T>>;
template <typename T>
using MinimumOp = BinaryOp<T, Eigen::internal::scalar_min_op<T, T>>;

absl::Status RegisterBinaryDef(OpRegistry* ops, absl::string_view name, absl::string_view types,
                               absl::string_view doc) {
  return ops->Register(OpDefBuilder(std::string(name))
                           .Input("x: T")
                           .Input("y: T")
                           .Output("z: T")
                           .Attr(absl::StrCat("T: {", types, "}"))
                           .Doc(doc)
                           .SetShapeFn(BroadcastBinaryShape));
}

absl::Status RegisterBinaryOps(OpRegistry* ops, KernelRegistry* kernels) {
  constexpr char kAllTypes[] = "float32, float64, int32, int64";
  SLUICE_RETURN_IF_ERROR(
      RegisterBinaryDef(ops, "Add", kAllTypes, "z = x + y, numpy broadcasting."));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<AddOp, float, double, int32_t, int64_t>(kernels, "Add")));

  SLUICE_RETURN_IF_ERROR(
      RegisterBinaryDef(ops, "Sub", kAllTypes, "z = x - y, numpy broadcasting."));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<SubOp, float, double, int32_t, int64_t>(kernels, "Sub")));

  SLUICE_RETURN_IF_ERROR(
      RegisterBinaryDef(ops, "Mul", kAllTypes, "z = x * y, numpy broadcasting."));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<MulOp, float, double, int32_t, int64_t>(kernels, "Mul")));

  SLUICE_RETURN_IF_ERROR(
      RegisterBinaryDef(ops, "Div", "float32, float64",
                        "z = x / y, numpy broadcasting (IEEE: x/0 is +-inf or NaN)."));
  SLUICE_RETURN_IF_ERROR((RegisterCpuKernels<DivOp, float, double>(kernels, "Div")));

  SLUICE_RETURN_IF_ERROR(RegisterBinaryDef(ops, "Maximum", kAllTypes,
                                           "z = max(x, y) elementwise, numpy broadcasting."));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<MaximumOp, float, double, int32_t, int64_t>(kernels, "Maximum")));

  SLUICE_RETURN_IF_ERROR(RegisterBinaryDef(ops, "Minimum", kAllTypes,
                                           "z = min(x, y) elementwise, numpy broadcasting."));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<MinimumOp, float, double, int32_t, int64_t>(kernels, "Minimum")));
  return absl::OkStatus();
}

}  // namespace

absl::Status RegisterMathOps(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(RegisterUnaryOps(ops, kernels));
  SLUICE_RETURN_IF_ERROR(RegisterBinaryOps(ops, kernels));
  SLUICE_RETURN_IF_ERROR(math_internal::RegisterMatMulOp(ops, kernels));
  SLUICE_RETURN_IF_ERROR(math_internal::RegisterReductionOps(ops, kernels));
  return absl::OkStatus();
}

namespace ops {

Output Add(const Scope& scope, Input x, Input y, SourceLocation loc) {
  return BuildOp(scope, "Add", {x, y}, {}, loc);
}
Output Sub(const Scope& scope, Input x, Input y, SourceLocation loc) {
  return BuildOp(scope, "Sub", {x, y}, {}, loc);
}
Output Mul(const Scope& scope, Input x, Input y, SourceLocation loc) {
  return BuildOp(scope, "Mul", {x, y}, {}, loc);
}
Output Div(const Scope& scope, Input x, Input y, SourceLocation loc) {
  return BuildOp(scope, "Div", {x, y}, {}, loc);
}
Output Maximum(const Scope& scope, Input x, Input y, SourceLocation loc) {
  return BuildOp(scope, "Maximum", {x, y}, {}, loc);
}
Output Minimum(const Scope& scope, Input x, Input y, SourceLocation loc) {
  return BuildOp(scope, "Minimum", {x, y}, {}, loc);
}
Output Neg(const Scope& scope, Input x, SourceLocation loc) {
  return BuildOp(scope, "Neg", {x}, {}, loc);
}
Output Exp(const Scope& scope, Input x, SourceLocation loc) {
  return BuildOp(scope, "Exp", {x}, {}, loc);
}
Output Log(const Scope& scope, Input x, SourceLocation loc) {
  return BuildOp(scope, "Log", {x}, {}, loc);
}
Output Square(const Scope& scope, Input x, SourceLocation loc) {
  return BuildOp(scope, "Square", {x}, {}, loc);
}
Output Sqrt(const Scope& scope, Input x, SourceLocation loc) {
  return BuildOp(scope, "Sqrt", {x}, {}, loc);
}

}  // namespace ops
}  // namespace sluice
