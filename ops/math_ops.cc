// Elementwise math kernels. Binary ops take a broadcast plan (ops/kernel_util.h) and pick the
// cheapest evaluation: plain elementwise, scalar against tensor, an Eigen broadcast on the
// collapsed rank (1 to 5), or a strided loop beyond that. The scalar functions are Eigen's own
// vectorised functors, so every path computes the same values.

#include "ops/math_ops.h"

#include <cmath>
#include <cstdint>
#include <functional>
#include <type_traits>

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
template <typename T>
using AbsOp = UnaryElementwiseOp<T, Eigen::internal::scalar_abs_op<T>>;
template <typename T>
using SignOp = UnaryElementwiseOp<T, Eigen::internal::scalar_sign_op<T>>;
template <typename T>
using RsqrtOp = UnaryElementwiseOp<T, Eigen::internal::scalar_rsqrt_op<T>>;
template <typename T>
using ReciprocalOp = UnaryElementwiseOp<T, Eigen::internal::scalar_inverse_op<T>>;
template <typename T>
using FloorOp = UnaryElementwiseOp<T, Eigen::internal::scalar_floor_op<T>>;
template <typename T>
using CeilOp = UnaryElementwiseOp<T, Eigen::internal::scalar_ceil_op<T>>;
// Halves round to even, as TensorFlow's Round and numpy's round do.
template <typename T>
using RoundOp = UnaryElementwiseOp<T, Eigen::internal::scalar_rint_op<T>>;

struct LogicalNotFn {
  bool operator()(bool x) const { return !x; }
};
template <typename T>
using LogicalNotOp = UnaryElementwiseOp<T, LogicalNotFn>;

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

  SLUICE_RETURN_IF_ERROR(
      RegisterUnaryDef(ops, "Abs", "float32, float64, int32, int64", "y = |x| elementwise."));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<AbsOp, float, double, int32_t, int64_t>(kernels, "Abs")));
  SLUICE_RETURN_IF_ERROR(RegisterUnaryDef(ops, "Sign", "float32, float64, int32, int64",
                                          "y = -1, 0 or 1 as x is negative, zero or positive."));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<SignOp, float, double, int32_t, int64_t>(kernels, "Sign")));
  SLUICE_RETURN_IF_ERROR(
      RegisterUnaryDef(ops, "Rsqrt", "float32, float64", "y = 1 / sqrt(x) elementwise."));
  SLUICE_RETURN_IF_ERROR((RegisterCpuKernels<RsqrtOp, float, double>(kernels, "Rsqrt")));
  SLUICE_RETURN_IF_ERROR(
      RegisterUnaryDef(ops, "Reciprocal", "float32, float64", "y = 1 / x elementwise."));
  SLUICE_RETURN_IF_ERROR((RegisterCpuKernels<ReciprocalOp, float, double>(kernels, "Reciprocal")));
  SLUICE_RETURN_IF_ERROR(RegisterUnaryDef(ops, "Floor", "float32, float64",
                                          "y = the largest integer <= x, elementwise."));
  SLUICE_RETURN_IF_ERROR((RegisterCpuKernels<FloorOp, float, double>(kernels, "Floor")));
  SLUICE_RETURN_IF_ERROR(RegisterUnaryDef(ops, "Ceil", "float32, float64",
                                          "y = the smallest integer >= x, elementwise."));
  SLUICE_RETURN_IF_ERROR((RegisterCpuKernels<CeilOp, float, double>(kernels, "Ceil")));
  SLUICE_RETURN_IF_ERROR(RegisterUnaryDef(
      ops, "Round", "float32, float64",
      "y = x rounded to the nearest integer, halves to the even one (0.5 -> 0, 1.5 -> 2)."));
  SLUICE_RETURN_IF_ERROR((RegisterCpuKernels<RoundOp, float, double>(kernels, "Round")));
  SLUICE_RETURN_IF_ERROR(RegisterUnaryDef(ops, "LogicalNot", "bool", "y = not x elementwise."));
  return RegisterCpuKernels<LogicalNotOp, bool>(kernels, "LogicalNot");
}

// ---------------------------------------------------------------------------------------------
// Binary ops: z = F(x, y) with numpy broadcasting.

// Eigen broadcast of the collapsed views, for a compile-time rank N.
template <typename T, typename F, int N>
void BroadcastEval(OpKernelContext* ctx, const BroadcastPlan& p, const Tensor& x, const Tensor& y,
                   Tensor* z) {
  using Out = std::invoke_result_t<F, T, T>;
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
  TensorMapT<Out, N> zm(z->data<Out>(), zd);
  EvalExpr(*ctx, zm, xm.broadcast(xb).binaryExpr(ym.broadcast(yb), F()));
}

// Any collapsed rank: an odometer over the output with stride 0 along broadcast dimensions.
template <typename T, typename F>
void StridedEval(const BroadcastPlan& p, const Tensor& x, const Tensor& y, Tensor* z) {
  using Out = std::invoke_result_t<F, T, T>;
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
  Out* zp = z->data<Out>();
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

// z = F(x, y); z's element type is what F returns (bool for comparisons).
template <typename T, typename F>
class BinaryOp : public OpKernel {
  using Out = std::invoke_result_t<F, T, T>;

 public:
  explicit BinaryOp(const Node& node) : OpKernel(node), cheap_(SmallKnownOutput(node)) {}

  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& y = ctx->input(1);
    // Hot path: identical shapes need no plan.
    if (x.shape() == y.shape()) {
      SLUICE_ASSIGN_OR_RETURN(Tensor * z, ForwardEither(ctx, x.shape()));
      EvalExpr(*ctx, z->flat<Out>(), x.flat<T>().binaryExpr(y.flat<T>(), F()));
      return absl::OkStatus();
    }
    SLUICE_ASSIGN_OR_RETURN(BroadcastPlan p, PlanBroadcast(x.shape(), y.shape()));
    SLUICE_ASSIGN_OR_RETURN(Tensor * z, ForwardEither(ctx, p.output_shape));
    if (z->num_elements() == 0) return absl::OkStatus();
    auto zf = z->flat<Out>();
    switch (p.kind) {
      case BroadcastPlan::Kind::kSameSize:
        EvalExpr(*ctx, zf, x.flat<T>().binaryExpr(y.flat<T>(), F()));
        return absl::OkStatus();
      case BroadcastPlan::Kind::kScalarX:
        EvalExpr(*ctx, zf, y.flat<T>().constant(x.scalar<T>()).binaryExpr(y.flat<T>(), F()));
        return absl::OkStatus();
      case BroadcastPlan::Kind::kScalarY:
        EvalExpr(*ctx, zf, x.flat<T>().binaryExpr(x.flat<T>().constant(y.scalar<T>()), F()));
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
    if constexpr (!std::is_same_v<Out, T>) return ctx->allocate_output(0, shape);
    if (ctx->input(0).shape() == shape) return ForwardInputOrAllocateOutput(ctx, 0, 0, shape);
    if (ctx->input(1).shape() == shape) return ForwardInputOrAllocateOutput(ctx, 1, 0, shape);
    return ctx->allocate_output(0, shape);
  }

  const bool cheap_;
};

// Integer FloorDiv and FloorMod refuse a zero divisor before computing (x86 traps on it); the
// functors also map the one overflowing case, lowest / -1, to what wraps.
template <typename T, typename F>
class IntegerDivisionOp : public BinaryOp<T, F> {
 public:
  using BinaryOp<T, F>::BinaryOp;
  absl::Status Compute(OpKernelContext* ctx) override {
    if constexpr (std::is_integral_v<T>) {
      const auto y = ctx->input(1).flat<T>();
      for (Eigen::Index i = 0; i < y.size(); ++i) {
        if (y(i) == 0) {
          return absl::InvalidArgumentError(
              absl::StrCat("integer division by zero: element ", i, " of the divisor is 0"));
        }
      }
    }
    return BinaryOp<T, F>::Compute(ctx);
  }
};

template <typename T>
struct FloorDivFn {
  T operator()(T x, T y) const {
    if constexpr (std::is_integral_v<T>) {
      if (y == -1) return static_cast<T>(0 - static_cast<std::make_unsigned_t<T>>(x));
      const T q = x / y;
      return (x % y != 0 && ((x < 0) != (y < 0))) ? q - 1 : q;
    } else {
      return std::floor(x / y);
    }
  }
};

// The remainder of floor division: it has the divisor's sign, as Python's % does.
template <typename T>
struct FloorModFn {
  T operator()(T x, T y) const {
    if constexpr (std::is_integral_v<T>) {
      if (y == -1) return 0;
      const T r = x % y;
      return (r != 0 && ((r < 0) != (y < 0))) ? r + y : r;
    } else {
      const T r = std::fmod(x, y);
      return (r != 0 && ((r < 0) != (y < 0))) ? r + y : r;
    }
  }
};

template <typename T>
struct PowFn {
  T operator()(T x, T y) const { return std::pow(x, y); }
};

template <typename T, typename Cmp>
struct CompareFn {
  bool operator()(T x, T y) const { return Cmp()(x, y); }
};

struct LogicalAndFn {
  bool operator()(bool x, bool y) const { return x && y; }
};
struct LogicalOrFn {
  bool operator()(bool x, bool y) const { return x || y; }
};

template <typename T>
using FloorDivOp = IntegerDivisionOp<T, FloorDivFn<T>>;
template <typename T>
using FloorModOp = IntegerDivisionOp<T, FloorModFn<T>>;
template <typename T>
using PowOp = BinaryOp<T, PowFn<T>>;
template <typename T>
using EqualOp = BinaryOp<T, CompareFn<T, std::equal_to<T>>>;
template <typename T>
using NotEqualOp = BinaryOp<T, CompareFn<T, std::not_equal_to<T>>>;
template <typename T>
using LessOp = BinaryOp<T, CompareFn<T, std::less<T>>>;
template <typename T>
using LessEqualOp = BinaryOp<T, CompareFn<T, std::less_equal<T>>>;
template <typename T>
using GreaterOp = BinaryOp<T, CompareFn<T, std::greater<T>>>;
template <typename T>
using GreaterEqualOp = BinaryOp<T, CompareFn<T, std::greater_equal<T>>>;
template <typename T>
using LogicalAndOp = BinaryOp<T, LogicalAndFn>;
template <typename T>
using LogicalOrOp = BinaryOp<T, LogicalOrFn>;

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

// Comparisons: bool z from x and y of one dtype, numpy broadcasting.
absl::Status RegisterComparisonDef(OpRegistry* ops, absl::string_view name, absl::string_view types,
                                   absl::string_view doc) {
  return ops->Register(OpDefBuilder(std::string(name))
                           .Input("x: T")
                           .Input("y: T")
                           .Output("z: bool")
                           .Attr(absl::StrCat("T: {", types, "}"))
                           .Doc(doc)
                           .SetShapeFn(BroadcastBinaryShape));
}

absl::Status RegisterLogicOps(OpRegistry* ops, KernelRegistry* kernels) {
  constexpr char kNumbers[] = "float32, float64, int32, int64";
  constexpr char kAll[] = "float32, float64, int32, int64, bool";
  SLUICE_RETURN_IF_ERROR(RegisterComparisonDef(ops, "Equal", kAll, "z = (x == y)."));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<EqualOp, float, double, int32_t, int64_t, bool>(kernels, "Equal")));
  SLUICE_RETURN_IF_ERROR(RegisterComparisonDef(ops, "NotEqual", kAll, "z = (x != y)."));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<NotEqualOp, float, double, int32_t, int64_t, bool>(kernels, "NotEqual")));
  SLUICE_RETURN_IF_ERROR(RegisterComparisonDef(ops, "Less", kNumbers, "z = (x < y)."));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<LessOp, float, double, int32_t, int64_t>(kernels, "Less")));
  SLUICE_RETURN_IF_ERROR(RegisterComparisonDef(ops, "LessEqual", kNumbers, "z = (x <= y)."));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<LessEqualOp, float, double, int32_t, int64_t>(kernels, "LessEqual")));
  SLUICE_RETURN_IF_ERROR(RegisterComparisonDef(ops, "Greater", kNumbers, "z = (x > y)."));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<GreaterOp, float, double, int32_t, int64_t>(kernels, "Greater")));
  SLUICE_RETURN_IF_ERROR(RegisterComparisonDef(ops, "GreaterEqual", kNumbers, "z = (x >= y)."));
  SLUICE_RETURN_IF_ERROR((RegisterCpuKernels<GreaterEqualOp, float, double, int32_t, int64_t>(
      kernels, "GreaterEqual")));
  SLUICE_RETURN_IF_ERROR(
      RegisterBinaryDef(ops, "LogicalAnd", "bool", "z = x and y, numpy broadcasting."));
  SLUICE_RETURN_IF_ERROR((RegisterCpuKernels<LogicalAndOp, bool>(kernels, "LogicalAnd")));
  SLUICE_RETURN_IF_ERROR(
      RegisterBinaryDef(ops, "LogicalOr", "bool", "z = x or y, numpy broadcasting."));
  return RegisterCpuKernels<LogicalOrOp, bool>(kernels, "LogicalOr");
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

  SLUICE_RETURN_IF_ERROR(RegisterBinaryDef(
      ops, "FloorDiv", kAllTypes,
      "z = floor(x / y), numpy broadcasting (Python's //); an integer y of 0 is an error."));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<FloorDivOp, float, double, int32_t, int64_t>(kernels, "FloorDiv")));
  SLUICE_RETURN_IF_ERROR(RegisterBinaryDef(
      ops, "FloorMod", kAllTypes,
      "z = x - floor(x / y) * y, numpy broadcasting (Python's %: the sign of y); an integer y "
      "of 0 is an error."));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<FloorModOp, float, double, int32_t, int64_t>(kernels, "FloorMod")));
  SLUICE_RETURN_IF_ERROR(RegisterBinaryDef(ops, "Pow", "float32, float64",
                                           "z = x to the power y, numpy broadcasting."));
  SLUICE_RETURN_IF_ERROR((RegisterCpuKernels<PowOp, float, double>(kernels, "Pow")));
  return RegisterLogicOps(ops, kernels);
}

// ---------------------------------------------------------------------------------------------
// Select: z = condition ? t : e elementwise, all three broadcast numpy-style.

absl::Status SelectShape(InferenceContext* c) {
  SLUICE_ASSIGN_OR_RETURN(TensorShape ct, BroadcastShapes(c->input_shape(0), c->input_shape(1)));
  SLUICE_ASSIGN_OR_RETURN(TensorShape out, BroadcastShapes(ct, c->input_shape(2)));
  c->set_output(0, out);
  return absl::OkStatus();
}

// Element strides of `in` when it is broadcast to `out` (right-aligned; 0 where it repeats).
std::vector<int64_t> BroadcastStrides(const TensorShape& in, const TensorShape& out) {
  std::vector<int64_t> strides(out.rank(), 0);
  int64_t stride = 1;
  for (int i = in.rank() - 1, o = out.rank() - 1; i >= 0; --i, --o) {
    if (in.dim(i) != 1) strides[o] = stride;
    stride *= in.dim(i);
  }
  return strides;
}

template <typename T>
class SelectOp : public OpKernel {
 public:
  explicit SelectOp(const Node& node) : OpKernel(node) {}

  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& c = ctx->input(0);
    const Tensor& t = ctx->input(1);
    const Tensor& e = ctx->input(2);
    if (c.shape() == t.shape() && t.shape() == e.shape()) {
      SLUICE_ASSIGN_OR_RETURN(Tensor * z, ctx->allocate_output(0, t.shape()));
      EvalExpr(*ctx, z->flat<T>(), c.flat<bool>().select(t.flat<T>(), e.flat<T>()));
      return absl::OkStatus();
    }
    SLUICE_ASSIGN_OR_RETURN(BroadcastPlan ct, PlanBroadcast(c.shape(), t.shape()));
    SLUICE_ASSIGN_OR_RETURN(BroadcastPlan all, PlanBroadcast(ct.output_shape, e.shape()));
    const TensorShape& shape = all.output_shape;
    SLUICE_ASSIGN_OR_RETURN(Tensor * z, ctx->allocate_output(0, shape));
    // An odometer over the output, each operand advancing by its own strides.
    const int rank = shape.rank();
    const std::vector<int64_t> cs = BroadcastStrides(c.shape(), shape);
    const std::vector<int64_t> ts = BroadcastStrides(t.shape(), shape);
    const std::vector<int64_t> es = BroadcastStrides(e.shape(), shape);
    std::vector<int64_t> index(rank, 0);
    const bool* cp = c.data<bool>();
    const T* tp = t.data<T>();
    const T* ep = e.data<T>();
    T* zp = z->data<T>();
    int64_t co = 0, to = 0, eo = 0;
    for (int64_t k = 0; k < z->num_elements(); ++k) {
      zp[k] = cp[co] ? tp[to] : ep[eo];
      for (int i = rank - 1; i >= 0; --i) {
        co += cs[i];
        to += ts[i];
        eo += es[i];
        if (++index[i] < shape.dim(i)) break;
        co -= cs[i] * index[i];
        to -= ts[i] * index[i];
        eo -= es[i] * index[i];
        index[i] = 0;
      }
    }
    return absl::OkStatus();
  }
};

absl::Status RegisterSelectOp(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("Select")
          .Input("condition: bool")
          .Input("t: T")
          .Input("e: T")
          .Output("output: T")
          .Attr("T: {float32, float64, int32, int64, bool}")
          .Doc("output = condition ? t : e elementwise; the three broadcast numpy-style.")
          .SetShapeFn(SelectShape)));
  return RegisterCpuKernels<SelectOp, float, double, int32_t, int64_t, bool>(kernels, "Select");
}

}  // namespace

absl::Status RegisterMathOps(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(RegisterUnaryOps(ops, kernels));
  SLUICE_RETURN_IF_ERROR(RegisterBinaryOps(ops, kernels));
  SLUICE_RETURN_IF_ERROR(RegisterSelectOp(ops, kernels));
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

Output FloorDiv(const Scope& scope, Input x, Input y, SourceLocation loc) {
  return BuildOp(scope, "FloorDiv", {x, y}, {}, loc);
}
Output FloorMod(const Scope& scope, Input x, Input y, SourceLocation loc) {
  return BuildOp(scope, "FloorMod", {x, y}, {}, loc);
}
Output Pow(const Scope& scope, Input x, Input y, SourceLocation loc) {
  return BuildOp(scope, "Pow", {x, y}, {}, loc);
}
Output Equal(const Scope& scope, Input x, Input y, SourceLocation loc) {
  return BuildOp(scope, "Equal", {x, y}, {}, loc);
}
Output NotEqual(const Scope& scope, Input x, Input y, SourceLocation loc) {
  return BuildOp(scope, "NotEqual", {x, y}, {}, loc);
}
Output Less(const Scope& scope, Input x, Input y, SourceLocation loc) {
  return BuildOp(scope, "Less", {x, y}, {}, loc);
}
Output LessEqual(const Scope& scope, Input x, Input y, SourceLocation loc) {
  return BuildOp(scope, "LessEqual", {x, y}, {}, loc);
}
Output Greater(const Scope& scope, Input x, Input y, SourceLocation loc) {
  return BuildOp(scope, "Greater", {x, y}, {}, loc);
}
Output GreaterEqual(const Scope& scope, Input x, Input y, SourceLocation loc) {
  return BuildOp(scope, "GreaterEqual", {x, y}, {}, loc);
}
Output LogicalAnd(const Scope& scope, Input x, Input y, SourceLocation loc) {
  return BuildOp(scope, "LogicalAnd", {x, y}, {}, loc);
}
Output LogicalOr(const Scope& scope, Input x, Input y, SourceLocation loc) {
  return BuildOp(scope, "LogicalOr", {x, y}, {}, loc);
}
Output Abs(const Scope& scope, Input x, SourceLocation loc) {
  return BuildOp(scope, "Abs", {x}, {}, loc);
}
Output Sign(const Scope& scope, Input x, SourceLocation loc) {
  return BuildOp(scope, "Sign", {x}, {}, loc);
}
Output Rsqrt(const Scope& scope, Input x, SourceLocation loc) {
  return BuildOp(scope, "Rsqrt", {x}, {}, loc);
}
Output Reciprocal(const Scope& scope, Input x, SourceLocation loc) {
  return BuildOp(scope, "Reciprocal", {x}, {}, loc);
}
Output Floor(const Scope& scope, Input x, SourceLocation loc) {
  return BuildOp(scope, "Floor", {x}, {}, loc);
}
Output Ceil(const Scope& scope, Input x, SourceLocation loc) {
  return BuildOp(scope, "Ceil", {x}, {}, loc);
}
Output Round(const Scope& scope, Input x, SourceLocation loc) {
  return BuildOp(scope, "Round", {x}, {}, loc);
}
Output LogicalNot(const Scope& scope, Input x, SourceLocation loc) {
  return BuildOp(scope, "LogicalNot", {x}, {}, loc);
}
Output Select(const Scope& scope, Input condition, Input t, Input e, SourceLocation loc) {
  return BuildOp(scope, "Select", {condition, t, e}, {}, loc);
}

}  // namespace ops
}  // namespace sluice
