// Gradient functions of the math family (comparisons, logic, rounding and ArgMax pass none). Binary
// ops sum their gradients back to each operand's shape (UnbroadcastGrad); reductions broadcast the
// gradient back over the reduced dimensions (ReductionGrad, MaxReductionGrad), with or without
// keep_dims.

#include <vector>

#include "core/status.h"
#include "ops/array_ops.h"
#include "ops/grad_helper_ops.h"
#include "ops/gradient_fns.h"
#include "ops/math_ops.h"

namespace sluice {
namespace {

using grad_internal::ShapeOf;
using grad_internal::UnbroadcastGrad;
using Grads = std::vector<Output>;

absl::Status AddGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  const Output x = OpInput(op, 0), y = OpInput(op, 1);
  *dx = {UnbroadcastGrad(s, dy[0], x, y), UnbroadcastGrad(s, dy[0], y, x)};
  return absl::OkStatus();
}

absl::Status SubGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  const Output x = OpInput(op, 0), y = OpInput(op, 1);
  *dx = {UnbroadcastGrad(s, dy[0], x, y), UnbroadcastGrad(s, ops::Neg(s, dy[0]), y, x)};
  return absl::OkStatus();
}

absl::Status MulGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  const Output x = OpInput(op, 0), y = OpInput(op, 1);
  *dx = {UnbroadcastGrad(s, ops::Mul(s, dy[0], y), x, y),
         UnbroadcastGrad(s, ops::Mul(s, x, dy[0]), y, x)};
  return absl::OkStatus();
}

// z = x / y: dz/dx = 1 / y, dz/dy = -x / y^2 = -z / y.
absl::Status DivGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  const Output x = OpInput(op, 0), y = OpInput(op, 1), z = OpOutput(op, 0);
  *dx = {UnbroadcastGrad(s, ops::Div(s, dy[0], y), x, y),
         UnbroadcastGrad(s, ops::Neg(s, ops::Div(s, ops::Mul(s, dy[0], z), y)), y, x)};
  return absl::OkStatus();
}

template <bool kMaximum>
absl::Status MaximumMinimumGradFn(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  const Output x = OpInput(op, 0), y = OpInput(op, 1);
  std::vector<Output> parts = ops::MaximumMinimumGrad(s, dy[0], x, y, kMaximum);
  if (parts.size() != 2) return s.status();
  *dx = {UnbroadcastGrad(s, parts[0], x, y), UnbroadcastGrad(s, parts[1], y, x)};
  return absl::OkStatus();
}

absl::Status NegGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  *dx = {ops::Neg(s, dy[0])};
  return absl::OkStatus();
}

absl::Status ExpGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  *dx = {ops::Mul(s, dy[0], OpOutput(op, 0))};
  return absl::OkStatus();
}

absl::Status LogGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  *dx = {ops::Div(s, dy[0], OpInput(op, 0))};
  return absl::OkStatus();
}

absl::Status SquareGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  *dx = {ops::Mul(s, dy[0], ops::Mul(s, OpInput(op, 0), 2.0))};
  return absl::OkStatus();
}

// y = sqrt(x): dy/dx = 0.5 / y.
absl::Status SqrtGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  *dx = {ops::Div(s, ops::Mul(s, dy[0], 0.5), OpOutput(op, 0))};
  return absl::OkStatus();
}

// c = op(a) op(b): each operand's gradient is a product of dc with the other operand, arranged
// so that no transpose is materialised.
absl::Status MatMulGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  SLUICE_ASSIGN_OR_RETURN(bool ta, op.GetAttr<bool>("transpose_a"));
  SLUICE_ASSIGN_OR_RETURN(bool tb, op.GetAttr<bool>("transpose_b"));
  const Output a = OpInput(op, 0), b = OpInput(op, 1), dc = dy[0];
  if (!ta && !tb) {
    *dx = {ops::MatMul(s, dc, b, false, true), ops::MatMul(s, a, dc, true, false)};
  } else if (!ta && tb) {
    *dx = {ops::MatMul(s, dc, b, false, false), ops::MatMul(s, dc, a, true, false)};
  } else if (ta && !tb) {
    *dx = {ops::MatMul(s, b, dc, false, true), ops::MatMul(s, a, dc, false, false)};
  } else {
    *dx = {ops::MatMul(s, b, dc, true, true), ops::MatMul(s, dc, a, true, true)};
  }
  return absl::OkStatus();
}

// As MatMul's, per matrix; an operand whose batch dimensions were broadcast gets its gradient
// summed over them.
absl::Status BatchMatMulGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  SLUICE_ASSIGN_OR_RETURN(bool ta, op.GetAttr<bool>("adj_x"));
  SLUICE_ASSIGN_OR_RETURN(bool tb, op.GetAttr<bool>("adj_y"));
  const Output a = OpInput(op, 0), b = OpInput(op, 1), dc = dy[0];
  Output da, db;
  if (!ta && !tb) {
    da = ops::BatchMatMul(s, dc, b, false, true);
    db = ops::BatchMatMul(s, a, dc, true, false);
  } else if (!ta && tb) {
    da = ops::BatchMatMul(s, dc, b, false, false);
    db = ops::BatchMatMul(s, dc, a, true, false);
  } else if (ta && !tb) {
    da = ops::BatchMatMul(s, b, dc, false, true);
    db = ops::BatchMatMul(s, a, dc, false, false);
  } else {
    da = ops::BatchMatMul(s, b, dc, true, true);
    db = ops::BatchMatMul(s, dc, a, true, true);
  }
  const TensorShape& out = OpOutput(op, 0).shape();
  auto reduce = [&](const Output& g, const Output& x) {
    const TensorShape& xs = x.shape();
    bool same = xs.IsFullyDefined() && out.IsFullyDefined() && xs.rank() == out.rank();
    for (int i = 0; same && i + 2 < xs.rank(); ++i) same = xs.dim(i) == out.dim(i);
    return same ? g : ops::ReduceToShape(s, g, ShapeOf(s, x));
  };
  *dx = {reduce(da, a), reduce(db, b)};
  return absl::OkStatus();
}

template <bool kMean>
absl::Status SumMeanGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  const Output x = OpInput(op, 0);
  *dx = {ops::ReductionGrad(s, dy[0], ShapeOf(s, x), OpInput(op, 1), kMean), Output()};
  return absl::OkStatus();
}

absl::Status MinGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  // Routing to the elements equal to the result is the same for Min as for Max.
  *dx = {ops::MaxReductionGrad(s, OpInput(op, 0), OpOutput(op, 0), dy[0], OpInput(op, 1)),
         Output()};
  return absl::OkStatus();
}

absl::Status ProdGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  *dx = {ops::ProdReductionGrad(s, OpInput(op, 0), dy[0], OpInput(op, 1)), Output()};
  return absl::OkStatus();
}

absl::Status AbsGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  *dx = {ops::Mul(s, dy[0], ops::Sign(s, OpInput(op, 0)))};
  return absl::OkStatus();
}

// y = x^(-1/2): dy/dx = -y^3 / 2.
absl::Status RsqrtGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  const Output y = OpOutput(op, 0);
  *dx = {ops::Mul(s, ops::Mul(s, dy[0], -0.5), ops::Mul(s, y, ops::Square(s, y)))};
  return absl::OkStatus();
}

// y = 1/x: dy/dx = -y^2.
absl::Status ReciprocalGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  *dx = {ops::Neg(s, ops::Mul(s, dy[0], ops::Square(s, OpOutput(op, 0))))};
  return absl::OkStatus();
}

// z = x^y: dz/dx = y x^(y-1); dz/dy = z ln(x), taken as 0 where x <= 0 (as TensorFlow does).
absl::Status PowGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  const Output x = OpInput(op, 0), y = OpInput(op, 1), z = OpOutput(op, 0);
  const Output gx = ops::Mul(s, dy[0], ops::Mul(s, y, ops::Pow(s, x, ops::Sub(s, y, 1.0))));
  const Output positive = ops::Greater(s, x, ops::ZerosLike(s, x));
  const Output safe_log =
      ops::Select(s, positive, ops::Log(s, ops::Select(s, positive, x, ops::OnesLike(s, x))),
                  ops::ZerosLike(s, x));
  const Output gy = ops::Mul(s, dy[0], ops::Mul(s, z, safe_log));
  *dx = {UnbroadcastGrad(s, gx, x, y), UnbroadcastGrad(s, gy, y, x)};
  return absl::OkStatus();
}

// z = x - floor(x / y) y: dz/dx = 1, dz/dy = -floor(x / y).
absl::Status FloorModGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  const Output x = OpInput(op, 0), y = OpInput(op, 1);
  const Output gy = ops::Mul(s, dy[0], ops::Neg(s, ops::FloorDiv(s, x, y)));
  *dx = {UnbroadcastGrad(s, dy[0], x, y), UnbroadcastGrad(s, gy, y, x)};
  return absl::OkStatus();
}

// The gradient goes to t where the condition holds and to e elsewhere; none to the condition.
absl::Status SelectGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  const Output c = OpInput(op, 0), t = OpInput(op, 1), e = OpInput(op, 2);
  const Output zeros = ops::ZerosLike(s, dy[0]);
  auto to_shape_of = [&](const Output& grad, const Output& operand) {
    if (operand.shape().IsFullyDefined() && operand.shape() == dy[0].shape()) return grad;
    return ops::ReduceToShape(s, grad, ShapeOf(s, operand));
  };
  *dx = {Output(), to_shape_of(ops::Select(s, c, dy[0], zeros), t),
         to_shape_of(ops::Select(s, c, zeros, dy[0]), e)};
  return absl::OkStatus();
}

absl::Status MaxGrad(const Scope& s, const Node& op, const Grads& dy, Grads* dx) {
  *dx = {ops::MaxReductionGrad(s, OpInput(op, 0), OpOutput(op, 0), dy[0], OpInput(op, 1)),
         Output()};
  return absl::OkStatus();
}

}  // namespace

absl::Status RegisterMathGradients(GradientRegistry* r) {
  SLUICE_RETURN_IF_ERROR(r->Register("Add", AddGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("Sub", SubGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("Mul", MulGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("Div", DivGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("Maximum", MaximumMinimumGradFn<true>));
  SLUICE_RETURN_IF_ERROR(r->Register("Minimum", MaximumMinimumGradFn<false>));
  SLUICE_RETURN_IF_ERROR(r->Register("Neg", NegGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("Exp", ExpGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("Log", LogGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("Square", SquareGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("Sqrt", SqrtGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("MatMul", MatMulGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("BatchMatMul", BatchMatMulGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("Sum", SumMeanGrad<false>));
  SLUICE_RETURN_IF_ERROR(r->Register("Mean", SumMeanGrad<true>));
  SLUICE_RETURN_IF_ERROR(r->Register("Max", MaxGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("Min", MinGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("Prod", ProdGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("Abs", AbsGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("Rsqrt", RsqrtGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("Reciprocal", ReciprocalGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("Pow", PowGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("FloorMod", FloorModGrad));
  SLUICE_RETURN_IF_ERROR(r->Register("Select", SelectGrad));
  // Piecewise constant, boolean or index results: no gradient flows through them.
  for (const char* op : {"Sign", "Floor", "Ceil", "Round", "FloorDiv", "Equal", "NotEqual", "Less",
                         "LessEqual", "Greater", "GreaterEqual", "LogicalAnd", "LogicalOr",
                         "LogicalNot", "Any", "All", "ArgMax", "ArgMin", "ProdReductionGrad"}) {
    SLUICE_RETURN_IF_ERROR(r->RegisterNoGradient(op));
  }
  return absl::OkStatus();
}

}  // namespace sluice
