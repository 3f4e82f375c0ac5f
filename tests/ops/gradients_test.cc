// Gradients of every differentiable op, checked against central finite differences in float64
// (tests/util/gradient_checker.h), plus AddGradients' own rules: fan-out sums, StopGradient,
// unconnected inputs, integer paths, errors.
#include "ops/gradients.h"

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "graph/gradient_registry.h"
#include "gtest/gtest.h"
#include "ops/all_ops.h"
#include "ops/grad_helper_ops.h"
#include "ops/register.h"
#include "tests/util/gradient_checker.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

using test::RunScope;
using test::StatusHas;
using test::TensorNear;
using BuildFn = std::function<std::vector<Output>(const Scope&, const std::vector<Output>&)>;

constexpr double kTolerance = 1e-6;

// Uniform values in [lo, hi), seeded; with `away_from` set, values within 0.05 of it move off.
Tensor Random(const TensorShape& shape, uint32_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  Tensor t(DType::kFloat64, shape);
  for (int64_t i = 0; i < t.num_elements(); ++i) t.data<double>()[i] = dist(rng);
  return t;
}

// Values at least 0.1 away from 0 (for Relu's kink).
Tensor RandomAwayFromZero(const TensorShape& shape, uint32_t seed) {
  Tensor t = Random(shape, seed);
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    double& v = t.data<double>()[i];
    v = v < 0 ? v - 0.1 : v + 0.1;
  }
  return t;
}

// Builds placeholders for `values` (with their static shapes, or shapes of unknown dimensions),
// applies `build` and returns the largest Jacobian error.
double GradientError(const std::vector<Tensor>& values, const BuildFn& build,
                     bool static_shapes = true) {
  Scope s = ops::NewRootScope();
  std::vector<Output> xs;
  for (size_t i = 0; i < values.size(); ++i) {
    TensorShape shape = values[i].shape();
    if (!static_shapes) {
      shape = TensorShape(std::vector<int64_t>(shape.rank(), kUnknownDim));
    }
    xs.push_back(ops::Placeholder(s.WithOpName("x" + std::to_string(i)), DType::kFloat64, shape));
  }
  std::vector<Output> ys = build(s, xs);
  EXPECT_TRUE(s.ok()) << s.status();
  absl::StatusOr<double> err = test::ComputeGradientError(s, xs, values, ys);
  EXPECT_TRUE(err.ok()) << err.status();
  return err.ok() ? *err : 1e9;
}

void ExpectGradientsMatch(const std::vector<Tensor>& values, const BuildFn& build,
                          const std::string& what) {
  for (bool static_shapes : {true, false}) {
    EXPECT_LT(GradientError(values, build, static_shapes), kTolerance)
        << what << (static_shapes ? " (static shapes)" : " (unknown shapes)");
  }
}

// ------------------------------------------------------------------------------------------
// Unary ops

struct UnaryCase {
  const char* name;
  std::function<Output(const Scope&, Output)> fn;
  double lo, hi;
};

TEST(GradientsTest, UnaryElementwise) {
  const std::vector<UnaryCase> cases = {
      {"Neg", [](const Scope& s, Output x) { return ops::Neg(s, x); }, -1, 1},
      {"Exp", [](const Scope& s, Output x) { return ops::Exp(s, x); }, -1, 1},
      {"Log", [](const Scope& s, Output x) { return ops::Log(s, x); }, 0.5, 2},
      {"Square", [](const Scope& s, Output x) { return ops::Square(s, x); }, -1, 1},
      {"Sqrt", [](const Scope& s, Output x) { return ops::Sqrt(s, x); }, 0.5, 2},
      {"Sigmoid", [](const Scope& s, Output x) { return ops::Sigmoid(s, x); }, -3, 3},
      {"Tanh", [](const Scope& s, Output x) { return ops::Tanh(s, x); }, -2, 2},
      {"Identity", [](const Scope& s, Output x) { return ops::Identity(s, x); }, -1, 1},
      {"Softmax", [](const Scope& s, Output x) { return ops::Softmax(s, x); }, -2, 2},
      {"LogSoftmax", [](const Scope& s, Output x) { return ops::LogSoftmax(s, x); }, -2, 2},
      {"Cast", [](const Scope& s, Output x) { return ops::Cast(s, x, DType::kFloat64); }, -1, 1},
  };
  uint32_t seed = 1;
  for (const UnaryCase& c : cases) {
    ExpectGradientsMatch(
        {Random(TensorShape({3, 4}), seed++, c.lo, c.hi)},
        [&](const Scope& s, const std::vector<Output>& x) {
          return std::vector<Output>{c.fn(s, x[0])};
        },
        c.name);
  }
}

TEST(GradientsTest, Relu) {
  ExpectGradientsMatch(
      {RandomAwayFromZero(TensorShape({4, 5}), 7)},
      [](const Scope& s, const std::vector<Output>& x) {
        return std::vector<Output>{ops::Relu(s, x[0])};
      },
      "Relu");
}

TEST(GradientsTest, CastThroughFloat32) {
  // float64 -> float32 -> float64 loses precision: the symbolic gradient is exactly 1, the
  // numeric one only to float32's resolution.
  Scope s = ops::NewRootScope();
  Output x = ops::Placeholder(s, DType::kFloat64, TensorShape({3}));
  Output y = ops::Cast(s, ops::Mul(s, ops::Cast(s, x, DType::kFloat32), 3.0f), DType::kFloat64);
  absl::StatusOr<double> err =
      test::ComputeGradientError(s, {x}, {Random(TensorShape({3}), 3)}, {y}, 1e-3);
  ASSERT_TRUE(err.ok()) << err.status();
  EXPECT_LT(*err, 1e-3);
}

// ------------------------------------------------------------------------------------------
// Binary ops with broadcasting

struct BinaryCase {
  const char* name;
  std::function<Output(const Scope&, Output, Output)> fn;
  double y_lo;  // Div needs y away from 0.
};

TEST(GradientsTest, BinaryElementwiseWithBroadcasting) {
  const std::vector<BinaryCase> cases = {
      {"Add", [](const Scope& s, Output x, Output y) { return ops::Add(s, x, y); }, -1},
      {"Sub", [](const Scope& s, Output x, Output y) { return ops::Sub(s, x, y); }, -1},
      {"Mul", [](const Scope& s, Output x, Output y) { return ops::Mul(s, x, y); }, -1},
      {"Div", [](const Scope& s, Output x, Output y) { return ops::Div(s, x, y); }, 0.5},
      {"Maximum", [](const Scope& s, Output x, Output y) { return ops::Maximum(s, x, y); }, -1},
      {"Minimum", [](const Scope& s, Output x, Output y) { return ops::Minimum(s, x, y); }, -1},
  };
  const std::vector<std::pair<TensorShape, TensorShape>> shapes = {
      {TensorShape({2, 3}), TensorShape({2, 3})},    {TensorShape({2, 3}), TensorShape({3})},
      {TensorShape({3}), TensorShape({2, 3})},       {TensorShape({2, 1}), TensorShape({1, 3})},
      {TensorShape({}), TensorShape({2, 3})},        {TensorShape({2, 3}), TensorShape({})},
      {TensorShape({4, 1, 3}), TensorShape({2, 1})},
  };
  uint32_t seed = 100;
  for (const BinaryCase& c : cases) {
    for (const auto& [xs, ys] : shapes) {
      ExpectGradientsMatch(
          {Random(xs, seed++), Random(ys, seed++, c.y_lo, 2.0)},
          [&](const Scope& s, const std::vector<Output>& v) {
            return std::vector<Output>{c.fn(s, v[0], v[1])};
          },
          std::string(c.name) + " " + xs.DebugString() + " " + ys.DebugString());
    }
  }
}

TEST(GradientsTest, MatMulAllTransposes) {
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      TensorShape a = ta ? TensorShape({4, 3}) : TensorShape({3, 4});
      TensorShape b = tb ? TensorShape({2, 4}) : TensorShape({4, 2});
      ExpectGradientsMatch(
          {Random(a, 11), Random(b, 12)},
          [&](const Scope& s, const std::vector<Output>& v) {
            return std::vector<Output>{ops::MatMul(s, v[0], v[1], ta, tb)};
          },
          absl::StrCat("MatMul ta=", ta, " tb=", tb));
    }
  }
}

// ------------------------------------------------------------------------------------------
// Reductions

TEST(GradientsTest, ReductionsWithAndWithoutKeepDims) {
  const std::vector<std::vector<int64_t>> axes = {{0}, {1}, {-1}, {0, 2}, {1, 2}, {0, 1, 2}, {}};
  using Reduce = Output (*)(const Scope&, Input, const std::vector<int64_t>&, bool, SourceLocation);
  const std::vector<std::pair<const char*, Reduce>> ops_list = {
      {"Sum", ops::ReduceSum}, {"Mean", ops::ReduceMean}, {"Max", ops::ReduceMax}};
  uint32_t seed = 200;
  for (const auto& entry : ops_list) {
    const char* name = entry.first;
    const Reduce reduce = entry.second;  // A structured binding cannot be captured in C++17.
    for (const auto& axis : axes) {
      for (bool keep_dims : {false, true}) {
        ExpectGradientsMatch(
            {Random(TensorShape({2, 3, 4}), seed++)},
            [&](const Scope& s, const std::vector<Output>& v) {
              return std::vector<Output>{
                  reduce(s, v[0], axis, keep_dims, SourceLocation::Current())};
            },
            absl::StrCat(name, " axes=", axis.size() ? axis[0] : -99, ",", axis.size(),
                         " keep_dims=", keep_dims));
      }
    }
  }
}

TEST(GradientsTest, ReductionWithComputedAxis) {
  // The axis comes from a node, not a Const: shapes are unknown when the graph is built.
  ExpectGradientsMatch(
      {Random(TensorShape({3, 4}), 5)},
      [](const Scope& s, const std::vector<Output>& v) {
        Output axis = ops::Identity(s, Tensor::Scalar<int32_t>(1));
        return std::vector<Output>{ops::ReduceMean(s, v[0], axis, true),
                                   ops::ReduceMax(s, v[0], axis)};
      },
      "computed axis");
}

TEST(GradientsTest, MaxSplitsGradientBetweenTies) {
  Scope s = ops::NewRootScope();
  Output x = ops::Placeholder(s, DType::kFloat64, TensorShape({2, 3}));
  Output y = ops::ReduceMax(s, x, {1});
  std::vector<Output> dx;
  ASSERT_TRUE(AddGradients(s, {y}, {x}, &dx).ok());
  Tensor xv = Tensor::FromVector<double>({1, 5, 5, 2, 0, 1}, TensorShape({2, 3}));
  auto out = RunScope(s, {dx[0]}, {{x, xv}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorNear((*out)[0],
                         Tensor::FromVector<double>({0, 0.5, 0.5, 1, 0, 0}, TensorShape({2, 3}))));
}

// ------------------------------------------------------------------------------------------
// Losses

TEST(GradientsTest, SoftmaxCrossEntropyBothOutputsBothInputs) {
  // Labels are distributions (rows sum to 1), as the op requires: its backprop output, which
  // the gradient reuses, is the derivative of the loss only then.
  Tensor labels = Random(TensorShape({3, 4}), 31, 0.1, 1.0);
  for (int r = 0; r < 3; ++r) {
    double sum = 0;
    for (int c = 0; c < 4; ++c) sum += labels.matrix<double>()(r, c);
    for (int c = 0; c < 4; ++c) labels.matrix<double>()(r, c) /= sum;
  }
  ExpectGradientsMatch(
      {Random(TensorShape({3, 4}), 30, -2, 2), labels},
      [](const Scope& s, const std::vector<Output>& v) {
        return ops::SoftmaxCrossEntropyWithLogits(s, v[0], v[1]);
      },
      "SoftmaxCrossEntropyWithLogits");
  // The loss alone (the usual case: no gradient reaches backprop).
  ExpectGradientsMatch(
      {Random(TensorShape({3, 4}), 32, -2, 2), labels},
      [](const Scope& s, const std::vector<Output>& v) {
        return std::vector<Output>{ops::SoftmaxCrossEntropyWithLogits(s, v[0], v[1])[0]};
      },
      "SoftmaxCrossEntropyWithLogits loss");
}

TEST(GradientsTest, SparseSoftmaxCrossEntropy) {
  ExpectGradientsMatch(
      {Random(TensorShape({3, 5}), 40, -2, 2)},
      [](const Scope& s, const std::vector<Output>& v) {
        Input labels = Tensor::FromVector<int64_t>({4, 0, 2});
        std::vector<Output> out = ops::SparseSoftmaxCrossEntropyWithLogits(s, v[0], labels);
        // Both outputs, and the mean loss a training graph uses.
        out.push_back(ops::ReduceMean(s, out[0], {0}));
        return out;
      },
      "SparseSoftmaxCrossEntropyWithLogits");
}

// ------------------------------------------------------------------------------------------
// Array ops

TEST(GradientsTest, ArrayOps) {
  ExpectGradientsMatch(
      {Random(TensorShape({2, 6}), 50)},
      [](const Scope& s, const std::vector<Output>& v) {
        return std::vector<Output>{ops::Reshape(s, v[0], {3, -1})};
      },
      "Reshape");
  ExpectGradientsMatch(
      {Random(TensorShape({2, 3, 4}), 51)},
      [](const Scope& s, const std::vector<Output>& v) {
        return std::vector<Output>{ops::Transpose(s, v[0], {2, 0, 1})};
      },
      "Transpose");
  ExpectGradientsMatch(
      {Random(TensorShape({2, 3, 4}), 52)},
      [](const Scope& s, const std::vector<Output>& v) {
        // A computed permutation: inverted by InvertPermutation at run time.
        Output perm = ops::Identity(s, Tensor::FromVector<int32_t>({1, 2, 0}));
        return std::vector<Output>{ops::Transpose(s, v[0], perm)};
      },
      "Transpose (computed perm)");
  ExpectGradientsMatch(
      {Random(TensorShape({2, 3}), 53), Random(TensorShape({2, 1}), 54),
       Random(TensorShape({2, 2}), 55)},
      [](const Scope& s, const std::vector<Output>& v) {
        return std::vector<Output>{ops::Concat(s, v, 1)};
      },
      "Concat");
  ExpectGradientsMatch(
      {Random(TensorShape({2, 6}), 56)},
      [](const Scope& s, const std::vector<Output>& v) {
        std::vector<Output> parts = ops::Split(s, 1, v[0], 3);
        return std::vector<Output>{parts[0], ops::Square(s, parts[2])};
      },
      "Split (one output unused)");
  ExpectGradientsMatch(
      {Random(TensorShape({3, 4}), 57)},
      [](const Scope& s, const std::vector<Output>& v) {
        return std::vector<Output>{ops::Slice(s, v[0], {1, 1}, {2, -1})};
      },
      "Slice");
  ExpectGradientsMatch(
      {Random(TensorShape({}), 58)},
      [](const Scope& s, const std::vector<Output>& v) {
        return std::vector<Output>{ops::Mul(s, ops::Fill(s, {2, 3}, v[0]), Random({2, 3}, 59))};
      },
      "Fill");
  ExpectGradientsMatch(
      {Random(TensorShape({2, 2}), 60), Random(TensorShape({2, 2}), 61)},
      [](const Scope& s, const std::vector<Output>& v) {
        return std::vector<Output>{ops::AddN(s, {v[0], v[1], v[0]})};
      },
      "AddN");
  ExpectGradientsMatch(
      {Random(TensorShape({4, 2}), 62)},
      [](const Scope& s, const std::vector<Output>& v) {
        std::vector<Output> parts = ops::DynamicPartition(
            s, v[0], ops::Const(s, Tensor::FromVector<int32_t>({1, 0, 1, 2})), 3);
        return std::vector<Output>{ops::Square(s, parts[1]), parts[2]};
      },
      "DynamicPartition (one output unused)");
  ExpectGradientsMatch(
      {Random(TensorShape({2, 3}), 63), Random(TensorShape({1, 3}), 64)},
      [](const Scope& s, const std::vector<Output>& v) {
        return std::vector<Output>{
            ops::Square(s, ops::DynamicStitch(s,
                                              {ops::Const(s, Tensor::FromVector<int32_t>({2, 0})),
                                               ops::Const(s, Tensor::FromVector<int32_t>({1}))},
                                              v))};
      },
      "DynamicStitch");
}

// ------------------------------------------------------------------------------------------
// AddGradients' rules

TEST(GradientsTest, FanOutGradientsAreSummed) {
  Scope s = ops::NewRootScope();
  Output x = ops::Placeholder(s, DType::kFloat64, TensorShape({3}));
  Output y = ops::Add(s, ops::Mul(s, x, x), x);  // dy/dx = 2x + 1
  std::vector<Output> dx;
  ASSERT_TRUE(AddGradients(s, {y}, {x}, &dx).ok());
  auto out = RunScope(s, {dx[0]}, {{x, Tensor::FromVector<double>({1, -2, 0.5})}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorNear((*out)[0], Tensor::FromVector<double>({3, -3, 2})));
}

TEST(GradientsTest, GradYsScaleTheResultAndRepeatedYsAdd) {
  Scope s = ops::NewRootScope();
  Output x = ops::Placeholder(s, DType::kFloat64, TensorShape({2}));
  Output y = ops::Mul(s, x, 3.0);
  Output dy = ops::Const(s, Tensor::FromVector<double>({1, 10}));
  std::vector<Output> dx;
  ASSERT_TRUE(AddGradients(s, {y, y}, {x}, {dy, dy}, &dx).ok());
  auto out = RunScope(s, {dx[0]}, {{x, Tensor::FromVector<double>({1, 2})}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorNear((*out)[0], Tensor::FromVector<double>({6, 60})));
}

TEST(GradientsTest, StopGradientTreatsItsInputAsConstant) {
  Scope s = ops::NewRootScope();
  Output x = ops::Placeholder(s, DType::kFloat64, TensorShape({2}));
  Output y = ops::Mul(s, x, ops::StopGradient(s, x));  // d/dx = stop(x), not 2x
  std::vector<Output> dx;
  ASSERT_TRUE(AddGradients(s, {y}, {x}, &dx).ok());
  auto out = RunScope(s, {dx[0], y}, {{x, Tensor::FromVector<double>({3, -1})}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorNear((*out)[0], Tensor::FromVector<double>({3, -1})));
  EXPECT_TRUE(TensorNear((*out)[1], Tensor::FromVector<double>({9, 1})));
}

TEST(GradientsTest, UnconnectedInputsAreAbsentOrZero) {
  Scope s = ops::NewRootScope();
  Output a = ops::Placeholder(s, DType::kFloat64, TensorShape({2}));
  Output b = ops::Placeholder(s, DType::kFloat64, TensorShape({2}));
  Output stopped = ops::Placeholder(s, DType::kFloat64, TensorShape({2}));
  Output y = ops::Add(s, ops::Square(s, a), ops::StopGradient(s, stopped));
  std::vector<Output> dx;
  ASSERT_TRUE(AddGradients(s, {y}, {a, b, stopped}, &dx).ok());
  ASSERT_EQ(dx.size(), 3u);
  EXPECT_TRUE(dx[0].valid());
  EXPECT_FALSE(dx[1].valid());  // Not on any path.
  EXPECT_FALSE(dx[2].valid());  // Only through StopGradient.

  GradientOptions zeros;
  zeros.unconnected = GradientOptions::Unconnected::kZero;
  std::vector<Output> dz;
  ASSERT_TRUE(AddGradients(s, {y}, {b}, {}, &dz, zeros).ok());
  auto out = RunScope(s, {dz[0]}, {{b, Tensor::FromVector<double>({4, 5})}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorNear((*out)[0], Tensor::FromVector<double>({0, 0})));
}

TEST(GradientsTest, IntegerPathsCarryNoGradient) {
  Scope s = ops::NewRootScope();
  Output x = ops::Placeholder(s, DType::kFloat64, TensorShape({2}));
  Output y = ops::Add(s, ops::Cast(s, ops::Cast(s, x, DType::kInt32), DType::kFloat64), 1.0);
  std::vector<Output> dx;
  ASSERT_TRUE(AddGradients(s, {y}, {x}, &dx).ok());
  EXPECT_FALSE(dx[0].valid());
}

TEST(GradientsTest, GradientOfVariableReadAndIntermediateX) {
  Scope s = ops::NewRootScope();
  Output w = ops::Variable(s.WithOpName("w"), TensorShape({2}), DType::kFloat64);
  Output init = ops::Assign(s, w, Tensor::FromVector<double>({2, -3}));
  Output h = ops::Mul(s, w, 2.0);
  Output loss = ops::ReduceSum(s, ops::Square(s, h), {0});  // 4 w^2
  std::vector<Output> grads;
  ASSERT_TRUE(AddGradients(s.NewSubScope("gradients"), {loss}, {w, h}, &grads).ok());
  EXPECT_EQ(grads[0].node()->name().rfind("gradients/", 0), 0u) << grads[0].node()->name();
  auto graph = s.Finalize();
  ASSERT_TRUE(graph.ok());
  auto session = Session::Create(*graph);
  ASSERT_TRUE(session.ok());
  std::vector<Tensor> out;
  ASSERT_TRUE((*session)->Run({}, {init}, &out).ok());
  ASSERT_TRUE((*session)->Run({}, grads, &out).ok());
  EXPECT_TRUE(TensorNear(out[0], Tensor::FromVector<double>({16, -24})));  // 8 w
  EXPECT_TRUE(TensorNear(out[1], Tensor::FromVector<double>({8, -12})));   // 2 h
}

TEST(GradientsTest, BiasAddNeedsNoReductionForTheMatrixOperand) {
  Scope s = ops::NewRootScope();
  Output x = ops::Placeholder(s, DType::kFloat32, TensorShape({-1, 4}));
  Output b = ops::Placeholder(s, DType::kFloat32, TensorShape({4}));
  Output y = ops::ReduceSum(s, ops::Add(s, x, b), {0, 1});
  std::vector<Output> dx;
  ASSERT_TRUE(AddGradients(s, {y}, {x, b}, &dx).ok());
  int reduce_to_shape = 0;
  for (const Node* n : s.graph()->nodes()) reduce_to_shape += n->op() == "ReduceToShape";
  EXPECT_EQ(reduce_to_shape, 1);  // Only for b.
  Tensor xv(DType::kFloat32, TensorShape({3, 4}));
  xv.flat<float>().setConstant(1.0f);
  auto out = RunScope(s, dx, {{x, xv}, {b, Tensor::FromVector<float>({1, 2, 3, 4})}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorNear((*out)[1], Tensor::FromVector<float>({3, 3, 3, 3})));
}

TEST(GradientsTest, Errors) {
  Scope s = ops::NewRootScope();
  Output x = ops::Placeholder(s, DType::kFloat64, TensorShape({2}));
  Output i = ops::Placeholder(s, DType::kInt32, TensorShape({2}));
  Output y = ops::Exp(s, x);
  std::vector<Output> dx;
  EXPECT_TRUE(StatusHas(AddGradients(ops::NewRootScope(), {y}, {x}, &dx),
                        absl::StatusCode::kInvalidArgument,
                        "ys[0] Exp:0 is not in the scope's graph"));
  EXPECT_TRUE(StatusHas(AddGradients(ops::NewRootScope(), {y}, {x}, {y, y}, &dx),
                        absl::StatusCode::kInvalidArgument, "1 ys but 2 grad_ys"));
  {
    Scope t = ops::NewRootScope();
    Output xi = ops::Placeholder(t, DType::kInt32, TensorShape({2}));
    Output yf = ops::Cast(t, xi, DType::kFloat32);
    EXPECT_TRUE(StatusHas(AddGradients(t, {yf}, {xi}, &dx), absl::StatusCode::kInvalidArgument,
                          "cannot differentiate with respect to Placeholder:0 of dtype int32"));
  }
  {
    Scope t = ops::NewRootScope();
    Output a = ops::Placeholder(t, DType::kFloat64, TensorShape({2}));
    Output g = ops::ReluGrad(t, a, a);  // A helper op: no second derivatives.
    absl::Status st = AddGradients(t, {g}, {a}, &dx);
    EXPECT_TRUE(StatusHas(st, absl::StatusCode::kNotFound,
                          "node 'ReluGrad' (ReluGrad): no gradient is registered for op "
                          "'ReluGrad'"));
    EXPECT_FALSE(t.ok());  // Also recorded in the scope.
  }
  {
    Scope t = ops::NewRootScope();
    Output a = ops::Placeholder(t, DType::kFloat64, TensorShape({2}));
    Output bad = ops::Placeholder(t, DType::kFloat32, TensorShape({2}));
    EXPECT_TRUE(StatusHas(AddGradients(t, {a}, {a}, {bad}, &dx), absl::StatusCode::kInvalidArgument,
                          "has dtype float32"));
  }
  (void)i;
}

TEST(GradientsTest, EveryFoundationOpIsCovered) {
  RegisterAllOps();
  const GradientRegistry& r = *GradientRegistry::Global();
  for (const char* op : {"Identity",
                         "Reshape",
                         "Transpose",
                         "Concat",
                         "Split",
                         "Slice",
                         "Cast",
                         "Fill",
                         "Add",
                         "Sub",
                         "Mul",
                         "Div",
                         "Maximum",
                         "Minimum",
                         "Neg",
                         "Exp",
                         "Log",
                         "Square",
                         "Sqrt",
                         "MatMul",
                         "Sum",
                         "Mean",
                         "Max",
                         "Relu",
                         "Sigmoid",
                         "Tanh",
                         "Softmax",
                         "LogSoftmax",
                         "SoftmaxCrossEntropyWithLogits",
                         "SparseSoftmaxCrossEntropyWithLogits",
                         "AddN"}) {
    absl::StatusOr<const GradFn*> fn = r.LookUp(op);
    ASSERT_TRUE(fn.ok()) << op;
    EXPECT_NE(*fn, nullptr) << op << " should be differentiable";
  }
  for (const char* op :
       {"Const", "Placeholder", "NoOp", "ZerosLike", "OnesLike", "StopGradient", "Variable",
        "Assign", "AssignAdd", "AssignSub", "RandomUniform", "RandomNormal", "Shape"}) {
    absl::StatusOr<const GradFn*> fn = r.LookUp(op);
    ASSERT_TRUE(fn.ok()) << op;
    EXPECT_EQ(*fn, nullptr) << op << " should be NoGradient";
  }
  EXPECT_TRUE(StatusHas(r.LookUp("NoSuchOp").status(), absl::StatusCode::kNotFound,
                        "no gradient is registered for op 'NoSuchOp'"));
}

}  // namespace
}  // namespace sluice
