// Tests for ops/math_ops.h: every kernel against hand-worked values or a plain loop reference
// written here, for float32 and float64 (and integer types where registered), including
// broadcasting, empty tensors, both thread-pool and inline evaluation paths, and shape errors
// at graph-build time and at run time.
#include "ops/math_ops.h"

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "ops/all_ops.h"
#include "runtime/session/session.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

using test::At;
using test::Make;
using test::RunScope;
using test::RunScope1;
using test::StatusHas;
using test::TensorNear;
using test::Values;

// numpy broadcasting, one element at a time.
template <typename T>
Tensor ReferenceBinary(const Tensor& x, const Tensor& y,
                       const std::function<double(double, double)>& f) {
  const int rank = std::max(x.rank(), y.rank());
  std::vector<int64_t> xd(rank, 1), yd(rank, 1), od(rank);
  for (int i = 0; i < x.rank(); ++i) xd[rank - x.rank() + i] = x.dim(i);
  for (int i = 0; i < y.rank(); ++i) yd[rank - y.rank() + i] = y.dim(i);
  for (int i = 0; i < rank; ++i) od[i] = xd[i] == 1 ? yd[i] : xd[i];
  Tensor out(DTypeOf<T>::value, TensorShape(od));
  for (int64_t k = 0; k < out.num_elements(); ++k) {
    int64_t rem = k, xi = 0, yi = 0, xs = 1, ys = 1;
    for (int d = rank - 1; d >= 0; --d) {
      int64_t idx = rem % od[d];
      rem /= od[d];
      if (xd[d] != 1) xi += idx * xs;
      if (yd[d] != 1) yi += idx * ys;
      xs *= xd[d];
      ys *= yd[d];
    }
    out.data<T>()[k] = static_cast<T>(f(At(x, xi), At(y, yi)));
  }
  return out;
}

template <typename T>
class MathTypedTest : public ::testing::Test {};
using FloatTypes = ::testing::Types<float, double>;
TYPED_TEST_SUITE(MathTypedTest, FloatTypes);

TEST(MathOpsTest, AddBroadcastsRowHandWorked) {
  Scope root = ops::NewRootScope();
  Output z = ops::Add(root, ops::Const(root, Make<float>({1, 2, 3, 4, 5, 6}, {2, 3})),
                      ops::Const(root, Make<float>({10, 20, 30}, {3})));
  EXPECT_EQ(z.shape(), TensorShape({2, 3}));
  absl::StatusOr<Tensor> out = RunScope1(root, z);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorNear(*out, Make<float>({11, 22, 33, 14, 25, 36}, {2, 3})));
}

TEST(MathOpsTest, OuterBroadcastHandWorked) {
  // [2,1] - [1,3]: every pair.
  Scope root = ops::NewRootScope();
  Output z = ops::Sub(root, ops::Const(root, Make<double>({10, 20}, {2, 1})),
                      ops::Const(root, Make<double>({1, 2, 3}, {1, 3})));
  absl::StatusOr<Tensor> out = RunScope1(root, z);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorNear(*out, Make<double>({9, 8, 7, 19, 18, 17}, {2, 3})));
}

struct ShapePair {
  TensorShape x, y;
};

TYPED_TEST(MathTypedTest, BinaryOpsMatchLoopReference) {
  using T = TypeParam;
  const std::vector<ShapePair> cases = {
      {{2, 3}, {3}},
      {{2, 1}, {1, 3}},
      {{}, {2, 2}},
      {{2, 2}, {}},
      {{4, 1, 3}, {2, 1}},
      {{2, 3}, {2, 3}},
      {{3}, {2, 3}},
      {{1, 1}, {3}},        // One element but rank 2: scalar path.
      {{1, 2, 3}, {2, 3}},  // Same elements, different rank.
      {{5, 1}, {1}},
      {{2, 1, 3, 1, 2}, {4, 1, 5, 1}},           // Collapses to rank 5.
      {{2, 1, 2, 1, 2, 1}, {1, 2, 1, 2, 1, 2}},  // Rank 6: the strided loop.
      {{0, 3}, {3}},                             // Empty output.
      {{300, 200}, {200}},                       // Large enough for the thread pool.
      {{64, 1, 300}, {1, 40, 300}},
  };
  struct NamedOp {
    const char* name;
    std::function<Output(const Scope&, Input, Input)> build;
    std::function<double(double, double)> ref;
  };
  const std::vector<NamedOp> named_ops = {
      {"Add", [](const Scope& s, Input a, Input b) { return ops::Add(s, a, b); },
       [](double a, double b) { return a + b; }},
      {"Sub", [](const Scope& s, Input a, Input b) { return ops::Sub(s, a, b); },
       [](double a, double b) { return a - b; }},
      {"Mul", [](const Scope& s, Input a, Input b) { return ops::Mul(s, a, b); },
       [](double a, double b) { return a * b; }},
      {"Div", [](const Scope& s, Input a, Input b) { return ops::Div(s, a, b); },
       [](double a, double b) { return a / b; }},
      {"Maximum", [](const Scope& s, Input a, Input b) { return ops::Maximum(s, a, b); },
       [](double a, double b) { return std::max(a, b); }},
      {"Minimum", [](const Scope& s, Input a, Input b) { return ops::Minimum(s, a, b); },
       [](double a, double b) { return std::min(a, b); }},
  };
  uint64_t seed = 1;
  for (const ShapePair& c : cases) {
    SCOPED_TRACE(c.x.DebugString() + " vs " + c.y.DebugString());
    Tensor x = Make<T>(Values(c.x.num_elements(), seed++), c.x);
    // Keep y away from 0 so Div is well conditioned.
    std::vector<double> yv = Values(c.y.num_elements(), seed++, 0.5, 2.5);
    for (size_t i = 0; i < yv.size(); i += 2) yv[i] = -yv[i];
    Tensor y = Make<T>(yv, c.y);
    Scope root = ops::NewRootScope();
    Output xo = ops::Const(root, x), yo = ops::Const(root, y);
    std::vector<Output> fetches;
    for (const NamedOp& op : named_ops) fetches.push_back(op.build(root, xo, yo));
    absl::StatusOr<std::vector<Tensor>> out = RunScope(root, fetches);
    ASSERT_TRUE(out.ok()) << out.status();
    for (size_t i = 0; i < named_ops.size(); ++i) {
      SCOPED_TRACE(named_ops[i].name);
      Tensor expected = ReferenceBinary<T>(x, y, named_ops[i].ref);
      EXPECT_EQ(fetches[i].shape(), expected.shape());
      EXPECT_TRUE(TensorNear((*out)[i], expected, 1e-6, 1e-6));
    }
  }
}

template <typename T>
void CheckIntegerBinaryOps() {
  Scope root = ops::NewRootScope();
  Output x = ops::Const(root, Make<T>({1, -2, 3, 4, 5, -6}, {2, 3}));
  Output y = ops::Const(root, Make<T>({2, 2, -7}, {3}));
  absl::StatusOr<std::vector<Tensor>> out =
      RunScope(root, {ops::Add(root, x, y), ops::Sub(root, x, y), ops::Mul(root, x, y),
                      ops::Maximum(root, x, y), ops::Minimum(root, x, y), ops::Neg(root, x),
                      ops::Square(root, x)});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorNear((*out)[0], Make<T>({3, 0, -4, 6, 7, -13}, {2, 3})));
  EXPECT_TRUE(TensorNear((*out)[1], Make<T>({-1, -4, 10, 2, 3, 1}, {2, 3})));
  EXPECT_TRUE(TensorNear((*out)[2], Make<T>({2, -4, -21, 8, 10, 42}, {2, 3})));
  EXPECT_TRUE(TensorNear((*out)[3], Make<T>({2, 2, 3, 4, 5, -6}, {2, 3})));
  EXPECT_TRUE(TensorNear((*out)[4], Make<T>({1, -2, -7, 2, 2, -7}, {2, 3})));
  EXPECT_TRUE(TensorNear((*out)[5], Make<T>({-1, 2, -3, -4, -5, 6}, {2, 3})));
  EXPECT_TRUE(TensorNear((*out)[6], Make<T>({1, 4, 9, 16, 25, 36}, {2, 3})));
}

TEST(MathOpsTest, IntegerBinaryAndUnaryOps) {
  CheckIntegerBinaryOps<int32_t>();
  CheckIntegerBinaryOps<int64_t>();
}

TEST(MathOpsTest, LiteralTakesTheOtherInputsDtype) {
  Scope root = ops::NewRootScope();
  Output x = ops::Const(root, Make<double>({1, 2, 3}, {3}));
  Output z = ops::Mul(root, x, 2.0f);
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_EQ(z.dtype(), DType::kFloat64);
  absl::StatusOr<Tensor> out = RunScope1(root, z);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorNear(*out, Make<double>({2, 4, 6}, {3})));
}

TYPED_TEST(MathTypedTest, UnaryOpsMatchStdFunctions) {
  using T = TypeParam;
  const TensorShape shape({3, 7});
  std::vector<double> any = Values(21, 11, -3.0, 3.0);
  std::vector<double> positive = Values(21, 12, 0.01, 9.0);
  Scope root = ops::NewRootScope();
  Output a = ops::Const(root, Make<T>(any, shape));
  Output p = ops::Const(root, Make<T>(positive, shape));
  absl::StatusOr<std::vector<Tensor>> out =
      RunScope(root, {ops::Neg(root, a), ops::Exp(root, a), ops::Log(root, p), ops::Square(root, a),
                      ops::Sqrt(root, p)});
  ASSERT_TRUE(out.ok()) << out.status();
  std::vector<double> neg, exp, log, square, sqrt;
  for (int i = 0; i < 21; ++i) {
    neg.push_back(-any[i]);
    exp.push_back(std::exp(static_cast<T>(any[i])));
    log.push_back(std::log(static_cast<T>(positive[i])));
    square.push_back(static_cast<T>(any[i]) * static_cast<T>(any[i]));
    sqrt.push_back(std::sqrt(static_cast<T>(positive[i])));
  }
  EXPECT_TRUE(TensorNear((*out)[0], Make<T>(neg, shape)));
  EXPECT_TRUE(TensorNear((*out)[1], Make<T>(exp, shape), 1e-6, 1e-6));
  EXPECT_TRUE(TensorNear((*out)[2], Make<T>(log, shape), 1e-6, 1e-6));
  EXPECT_TRUE(TensorNear((*out)[3], Make<T>(square, shape), 1e-6, 1e-6));
  EXPECT_TRUE(TensorNear((*out)[4], Make<T>(sqrt, shape), 1e-6, 1e-6));
}

TEST(MathOpsTest, LargeUnaryUsesThreadPoolAndMatches) {
  const int64_t n = 100000;
  std::vector<double> v = Values(n, 5);
  Scope root = ops::NewRootScope();
  absl::StatusOr<Tensor> out =
      RunScope1(root, ops::Exp(root, ops::Const(root, Make<float>(v, {n}))));
  ASSERT_TRUE(out.ok()) << out.status();
  std::vector<double> expected(n);
  for (int64_t i = 0; i < n; ++i) expected[i] = std::exp(static_cast<float>(v[i]));
  EXPECT_TRUE(TensorNear(*out, Make<float>(expected, {n}), 1e-6, 1e-6));
}

TEST(MathOpsTest, BufferReuseNeverCorruptsFedOrFetchedValues) {
  // Intermediates that are also fetched must not be overwritten by a consumer reusing their
  // buffer, and fed values must come back unchanged.
  Scope root = ops::NewRootScope();
  Output x = ops::Placeholder(root, DType::kFloat32, TensorShape({2, 3}));
  Output a = ops::Add(root, x, 1.0f);
  Output b = ops::Exp(root, a);
  Output c = ops::Neg(root, b);
  Output d = ops::Square(root, ops::Neg(root, ops::Add(root, x, 1.0f)));  // Nothing else reads.
  std::vector<double> xv = {0, 1, -1, 0.5, 2, -2};
  Tensor xt = Make<float>(xv, {2, 3});
  Tensor x_copy = xt.DeepCopy();
  absl::StatusOr<std::vector<Tensor>> out = RunScope(root, {a, c, b, d}, {{x, xt}});
  ASSERT_TRUE(out.ok()) << out.status();
  std::vector<double> av, bv, cv, dv;
  for (double v : xv) {
    av.push_back(v + 1);
    bv.push_back(std::exp(static_cast<float>(v + 1)));
    cv.push_back(-std::exp(static_cast<float>(v + 1)));
    dv.push_back((v + 1) * (v + 1));
  }
  EXPECT_TRUE(TensorNear((*out)[0], Make<float>(av, {2, 3})));
  EXPECT_TRUE(TensorNear((*out)[1], Make<float>(cv, {2, 3})));
  EXPECT_TRUE(TensorNear((*out)[2], Make<float>(bv, {2, 3})));
  EXPECT_TRUE(TensorNear((*out)[3], Make<float>(dv, {2, 3})));
  EXPECT_TRUE(test::TensorEq(xt, x_copy));
}

TEST(MathOpsTest, BroadcastIntoAReusedBufferMatchesReference) {
  // Exp(x) and Neg(x) have a single consumer each, so Add / Mul may write their output over
  // them while broadcasting the other operand; both the inline and the thread-pool paths.
  for (int64_t rows : {3, 300}) {
    SCOPED_TRACE(rows);
    const int64_t cols = 200;
    std::vector<double> xv = Values(rows * cols, 21), bias = Values(cols, 22),
                        scale = Values(rows, 23);
    Scope root = ops::NewRootScope();
    Output x = ops::Placeholder(root, DType::kFloat32, TensorShape({rows, cols}));
    Output added = ops::Add(root, ops::Exp(root, x), ops::Const(root, Make<float>(bias, {cols})));
    Output scaled =
        ops::Mul(root, ops::Const(root, Make<float>(scale, {rows, 1})), ops::Neg(root, x));
    absl::StatusOr<std::vector<Tensor>> out =
        RunScope(root, {added, scaled}, {{x, Make<float>(xv, {rows, cols})}});
    ASSERT_TRUE(out.ok()) << out.status();
    std::vector<double> want_added, want_scaled;
    for (int64_t i = 0; i < rows * cols; ++i) {
      want_added.push_back(std::exp(static_cast<float>(xv[i])) +
                           static_cast<float>(bias[i % cols]));
      want_scaled.push_back(static_cast<float>(scale[i / cols]) * -static_cast<float>(xv[i]));
    }
    EXPECT_TRUE(TensorNear((*out)[0], Make<float>(want_added, {rows, cols}), 1e-5, 1e-5));
    EXPECT_TRUE(TensorNear((*out)[1], Make<float>(want_scaled, {rows, cols}), 1e-6, 1e-6));
  }
}

TEST(MathOpsTest, IncompatibleBroadcastFailsAtBuildTime) {
  Scope root = ops::NewRootScope();
  Output z = ops::Add(root, ops::Const(root, Make<float>(Values(6, 1), {2, 3})),
                      ops::Const(root, Make<float>(Values(4, 2), {4})));
  EXPECT_FALSE(z.valid());
  EXPECT_TRUE(StatusHas(root.status(), absl::StatusCode::kInvalidArgument,
                        "Incompatible shapes for broadcasting: [2,3] vs [4]"));
  EXPECT_TRUE(StatusHas(root.status(), absl::StatusCode::kInvalidArgument, "node 'Add' (Add)"));
}

TEST(MathOpsTest, IncompatibleBroadcastFailsAtRunTime) {
  Scope root = ops::NewRootScope();
  Output x = ops::Placeholder(root, DType::kFloat32);
  Output y = ops::Placeholder(root, DType::kFloat32);
  Output z = ops::Mul(root, x, y);
  ASSERT_TRUE(root.ok()) << root.status();
  absl::StatusOr<Tensor> out = RunScope1(
      root, z, {{x, Make<float>(Values(6, 1), {2, 3})}, {y, Make<float>(Values(4, 2), {4})}});
  EXPECT_TRUE(StatusHas(out.status(), absl::StatusCode::kInvalidArgument,
                        "Incompatible shapes for broadcasting: [2,3] vs [4]"));
  EXPECT_TRUE(StatusHas(out.status(), absl::StatusCode::kInvalidArgument, "node 'Mul' (Mul)"));
}

TEST(MathOpsTest, DivOfIntegersIsRejectedAtBuildTime) {
  Scope root = ops::NewRootScope();
  ops::Div(root, ops::Const(root, Make<int32_t>({4}, {1})),
           ops::Const(root, Make<int32_t>({2}, {1})));
  EXPECT_TRUE(StatusHas(root.status(), absl::StatusCode::kInvalidArgument, "int32"));
}

// ---------------------------------------------------------------------------------------------
// MatMul.

template <typename T>
Tensor ReferenceMatMul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  const int64_t m = ta ? a.dim(1) : a.dim(0), k = ta ? a.dim(0) : a.dim(1);
  const int64_t n = tb ? b.dim(0) : b.dim(1);
  Tensor c(DTypeOf<T>::value, TensorShape({m, n}));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0;
      for (int64_t p = 0; p < k; ++p) {
        double av = ta ? At(a, p * a.dim(1) + i) : At(a, i * a.dim(1) + p);
        double bv = tb ? At(b, j * b.dim(1) + p) : At(b, p * b.dim(1) + j);
        sum += av * bv;
      }
      c.data<T>()[i * n + j] = static_cast<T>(sum);
    }
  }
  return c;
}

// Runs with a session whose device has `intra_op_threads` threads, so both kernel paths (one
// thread: Eigen matrix product; several: tensor contraction on the pool) are covered.
absl::StatusOr<std::vector<Tensor>> RunWithThreads(const Scope& scope,
                                                   const std::vector<Output>& fetches,
                                                   int intra_op_threads) {
  absl::StatusOr<std::shared_ptr<const Graph>> graph = scope.Finalize();
  if (!graph.ok()) return graph.status();
  SessionOptions options;
  options.device.intra_op_threads = intra_op_threads;
  absl::StatusOr<std::unique_ptr<Session>> session = Session::Create(*graph, options);
  if (!session.ok()) return session.status();
  std::vector<Tensor> out;
  absl::Status s = (*session)->Run(std::vector<std::pair<Output, Tensor>>{}, fetches, &out);
  if (!s.ok()) return s;
  return out;
}

TYPED_TEST(MathTypedTest, MatMulAllTransposesMatchTripleLoop) {
  using T = TypeParam;
  struct Dims {
    int64_t m, k, n;
  };
  for (Dims d : {Dims{5, 7, 3}, Dims{1, 1, 1}, Dims{70, 80, 90}, Dims{129, 65, 33}}) {
    for (int threads : {1, 3}) {
      SCOPED_TRACE(absl::StrCat(d.m, "x", d.k, "x", d.n, " threads=", threads));
      Scope root = ops::NewRootScope();
      std::vector<Output> fetches;
      std::vector<Tensor> expected;
      uint64_t seed = 100;
      for (bool ta : {false, true}) {
        for (bool tb : {false, true}) {
          TensorShape as = ta ? TensorShape({d.k, d.m}) : TensorShape({d.m, d.k});
          TensorShape bs = tb ? TensorShape({d.n, d.k}) : TensorShape({d.k, d.n});
          Tensor a = Make<T>(Values(d.m * d.k, seed++), as);
          Tensor b = Make<T>(Values(d.k * d.n, seed++), bs);
          Output c = ops::MatMul(root, ops::Const(root, a), ops::Const(root, b), ta, tb);
          EXPECT_EQ(c.shape(), TensorShape({d.m, d.n}));
          fetches.push_back(c);
          expected.push_back(ReferenceMatMul<T>(a, b, ta, tb));
        }
      }
      absl::StatusOr<std::vector<Tensor>> out = RunWithThreads(root, fetches, threads);
      ASSERT_TRUE(out.ok()) << out.status();
      const double tol = std::is_same_v<T, float> ? 1e-4 : 1e-10;
      for (int i = 0; i < 4; ++i) {
        SCOPED_TRACE(absl::StrCat("transpose_a=", i / 2, " transpose_b=", i % 2));
        EXPECT_TRUE(TensorNear((*out)[i], expected[i], tol, tol));
      }
    }
  }
}

TEST(MathOpsTest, MatMulHandWorked) {
  Scope root = ops::NewRootScope();
  Output c = ops::MatMul(root, ops::Const(root, Make<float>({1, 2, 3, 4, 5, 6}, {2, 3})),
                         ops::Const(root, Make<float>({7, 8, 9, 10, 11, 12}, {3, 2})));
  absl::StatusOr<Tensor> out = RunScope1(root, c);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorNear(*out, Make<float>({58, 64, 139, 154}, {2, 2})));
}

TEST(MathOpsTest, MatMulWithEmptyInnerDimensionIsZero) {
  Scope root = ops::NewRootScope();
  Output c = ops::MatMul(root, ops::Const(root, Tensor(DType::kFloat32, TensorShape({2, 0}))),
                         ops::Const(root, Tensor(DType::kFloat32, TensorShape({0, 3}))));
  absl::StatusOr<Tensor> out = RunScope1(root, c);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorNear(*out, Make<float>({0, 0, 0, 0, 0, 0}, {2, 3})));
}

TEST(MathOpsTest, MatMulShapeInferenceUsesKnownDims) {
  Scope root = ops::NewRootScope();
  Output x = ops::Placeholder(root, DType::kFloat32, TensorShape({kUnknownDim, 3}));
  Output w = ops::Const(root, Make<float>(Values(12, 3), {3, 4}));
  EXPECT_EQ(ops::MatMul(root, x, w).shape(), TensorShape({kUnknownDim, 4}));
  EXPECT_EQ(ops::MatMul(root, w, x, true, true).shape(), TensorShape({4, kUnknownDim}));
  Output u = ops::Placeholder(root, DType::kFloat32);
  EXPECT_EQ(ops::MatMul(root, u, w).shape(), TensorShape({kUnknownDim, 4}));
  ASSERT_TRUE(root.ok()) << root.status();
}

TEST(MathOpsTest, MatMulInnerDimensionMismatchFailsAtBuildTime) {
  Scope root = ops::NewRootScope();
  ops::MatMul(root, ops::Const(root, Make<float>(Values(6, 1), {2, 3})),
              ops::Const(root, Make<float>(Values(20, 2), {4, 5})));
  EXPECT_TRUE(StatusHas(root.status(), absl::StatusCode::kInvalidArgument,
                        "MatMul inner dimensions differ: [2,3] x [4,5]"));
}

TEST(MathOpsTest, MatMulTransposeFixesInnerDimensions) {
  Scope root = ops::NewRootScope();
  Output c = ops::MatMul(root, ops::Const(root, Make<float>(Values(6, 1), {2, 3})),
                         ops::Const(root, Make<float>(Values(6, 2), {2, 3})), false, true);
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_EQ(c.shape(), TensorShape({2, 2}));

  Scope bad = ops::NewRootScope();
  ops::MatMul(bad, ops::Const(bad, Make<float>(Values(6, 1), {2, 3})),
              ops::Const(bad, Make<float>(Values(9, 2), {3, 3})), true, false);
  EXPECT_TRUE(StatusHas(bad.status(), absl::StatusCode::kInvalidArgument,
                        "MatMul inner dimensions differ: [2,3] x [3,3] (transpose_a=true, "
                        "transpose_b=false)"));
}

TEST(MathOpsTest, MatMulRankErrorAtBuildTime) {
  Scope root = ops::NewRootScope();
  ops::MatMul(root, ops::Const(root, Make<float>(Values(3, 1), {3})),
              ops::Const(root, Make<float>(Values(6, 2), {3, 2})));
  EXPECT_TRUE(StatusHas(root.status(), absl::StatusCode::kInvalidArgument,
                        "MatMul requires rank-2 inputs: a has shape [3]"));
}

TEST(MathOpsTest, MatMulMismatchFailsAtRunTime) {
  Scope root = ops::NewRootScope();
  Output a = ops::Placeholder(root, DType::kFloat32);
  Output b = ops::Placeholder(root, DType::kFloat32);
  Output c = ops::MatMul(root, a, b);
  ASSERT_TRUE(root.ok()) << root.status();
  absl::StatusOr<Tensor> out = RunScope1(
      root, c, {{a, Make<float>(Values(6, 1), {2, 3})}, {b, Make<float>(Values(20, 2), {4, 5})}});
  EXPECT_TRUE(StatusHas(out.status(), absl::StatusCode::kInvalidArgument,
                        "MatMul inner dimensions differ: [2,3] x [4,5]"));
  out = RunScope1(root, c,
                  {{a, Make<float>(Values(6, 1), {6})}, {b, Make<float>(Values(20, 2), {4, 5})}});
  EXPECT_TRUE(StatusHas(out.status(), absl::StatusCode::kInvalidArgument,
                        "MatMul requires rank-2 inputs, got [6] x [4,5]"));
}

// ---------------------------------------------------------------------------------------------
// Reductions.

enum class Red { kSum, kMean, kMax };

// Reduces `x` over `axes` (may be negative or repeated) one input element at a time.
template <typename T>
Tensor ReferenceReduce(const Tensor& x, const std::vector<int64_t>& axes, bool keep_dims,
                       Red kind) {
  const int rank = x.rank();
  std::set<int> reduced;
  for (int64_t a : axes) reduced.insert(static_cast<int>(a < 0 ? a + rank : a));
  TensorShape out_shape;
  for (int d = 0; d < rank; ++d) {
    if (!reduced.count(d)) {
      out_shape.AddDim(x.dim(d));
    } else if (keep_dims) {
      out_shape.AddDim(1);
    }
  }
  const int64_t out_n = out_shape.num_elements();
  std::vector<double> acc(out_n, kind == Red::kMax ? -std::numeric_limits<double>::infinity() : 0);
  std::vector<int64_t> count(out_n, 0);
  for (int64_t k = 0; k < x.num_elements(); ++k) {
    // Output index: the input's multi-index with reduced dimensions dropped.
    int64_t rem = k, oi = 0, os = 1;
    for (int d = rank - 1; d >= 0; --d) {
      int64_t idx = rem % x.dim(d);
      rem /= x.dim(d);
      if (!reduced.count(d)) {
        oi += idx * os;
        os *= x.dim(d);
      }
    }
    double v = At(x, k);
    acc[oi] = kind == Red::kMax ? std::max(acc[oi], v) : acc[oi] + v;
    ++count[oi];
  }
  if (kind == Red::kMean) {
    for (int64_t i = 0; i < out_n; ++i) acc[i] /= count[i];
  }
  return Make<T>(acc, out_shape);
}

TYPED_TEST(MathTypedTest, ReductionsMatchLoopReference) {
  using T = TypeParam;
  struct Case {
    TensorShape shape;
    std::vector<int64_t> axes;
  };
  const std::vector<Case> cases = {
      {{2, 3, 4}, {0}},       {{2, 3, 4}, {1}},       {{2, 3, 4}, {2}},
      {{2, 3, 4}, {-1}},      {{2, 3, 4}, {0, 2}},    {{2, 3, 4}, {1, 2}},
      {{2, 3, 4}, {0, 1}},    {{2, 3, 4}, {0, 1, 2}}, {{2, 3, 4}, {}},
      {{2, 3, 4}, {1, -2}},   {{2, 3, 4, 5}, {0, 2}}, {{2, 3, 4, 5}, {1, 3}},
      {{3, 1, 4}, {1}},       {{3, 1, 4}, {0, 1}},    {{7}, {0}},
      {{300, 100}, {0}},      {{300, 100}, {1}},      {{100000}, {0}},
      {{40, 50, 30}, {0, 2}},
  };
  uint64_t seed = 40;
  for (const Case& c : cases) {
    for (bool keep_dims : {false, true}) {
      SCOPED_TRACE(absl::StrCat(c.shape.DebugString(), " axes {", absl::StrJoin(c.axes, ","),
                                "} keep_dims=", keep_dims));
      Tensor x = Make<T>(Values(c.shape.num_elements(), seed++), c.shape);
      Scope root = ops::NewRootScope();
      Output xo = ops::Const(root, x);
      std::vector<Output> fetches = {ops::ReduceSum(root, xo, c.axes, keep_dims),
                                     ops::ReduceMean(root, xo, c.axes, keep_dims),
                                     ops::ReduceMax(root, xo, c.axes, keep_dims)};
      absl::StatusOr<std::vector<Tensor>> out = RunScope(root, fetches);
      ASSERT_TRUE(out.ok()) << out.status();
      const double tol = std::is_same_v<T, float> ? 2e-4 : 1e-9;
      const Red kinds[] = {Red::kSum, Red::kMean, Red::kMax};
      for (int i = 0; i < 3; ++i) {
        Tensor expected = ReferenceReduce<T>(x, c.axes, keep_dims, kinds[i]);
        EXPECT_EQ(fetches[i].shape(), expected.shape()) << "shape inference, op " << i;
        EXPECT_TRUE(TensorNear((*out)[i], expected, tol, tol)) << "op " << i;
      }
    }
  }
}

TEST(MathOpsTest, ReductionHandWorkedWithInt32AndInt64Axes) {
  // [[1, 2, 3], [4, 5, 6]]
  Scope root = ops::NewRootScope();
  Output x = ops::Const(root, Make<float>({1, 2, 3, 4, 5, 6}, {2, 3}));
  Output rows = ops::ReduceSum(root, x, 1);  // int32 scalar
  Output cols = ops::ReduceMean(root, x, Tensor::FromVector<int32_t>({0}), true);
  Output all = ops::ReduceMax(root, x, Tensor::FromVector<int64_t>({0, 1}));
  absl::StatusOr<std::vector<Tensor>> out = RunScope(root, {rows, cols, all});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorNear((*out)[0], Make<float>({6, 15}, {2})));
  EXPECT_TRUE(TensorNear((*out)[1], Make<float>({2.5, 3.5, 4.5}, {1, 3})));
  EXPECT_TRUE(TensorNear((*out)[2], Make<float>({6}, {})));
}

TEST(MathOpsTest, IntegerReductions) {
  Scope root = ops::NewRootScope();
  Output x32 = ops::Const(root, Make<int32_t>({1, -2, 3, 4, 5, -6}, {2, 3}));
  Output x64 = ops::Const(root, Make<int64_t>({1, -2, 3, 4, 5, -6}, {2, 3}));
  absl::StatusOr<std::vector<Tensor>> out =
      RunScope(root, {ops::ReduceSum(root, x32, {0}), ops::ReduceMax(root, x32, {1}),
                      ops::ReduceSum(root, x64, {0, 1}), ops::ReduceMax(root, x64, {0}, true)});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorNear((*out)[0], Make<int32_t>({5, 3, -3}, {3})));
  EXPECT_TRUE(TensorNear((*out)[1], Make<int32_t>({3, 5}, {2})));
  EXPECT_TRUE(TensorNear((*out)[2], Make<int64_t>({5}, {})));
  EXPECT_TRUE(TensorNear((*out)[3], Make<int64_t>({4, 5, 3}, {1, 3})));
}

TEST(MathOpsTest, EmptyReductions) {
  Scope root = ops::NewRootScope();
  Output x = ops::Const(root, Tensor(DType::kFloat32, TensorShape({0, 3})));
  absl::StatusOr<std::vector<Tensor>> out =
      RunScope(root, {ops::ReduceSum(root, x, {0}), ops::ReduceMax(root, x, {0}),
                      ops::ReduceMean(root, x, {0}), ops::ReduceSum(root, x, {1})});
  ASSERT_TRUE(out.ok()) << out.status();
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(TensorNear((*out)[0], Make<float>({0, 0, 0}, {3})));
  ASSERT_EQ((*out)[1].shape(), TensorShape({3}));
  for (int i = 0; i < 3; ++i) EXPECT_EQ((*out)[1].data<float>()[i], -inf);
  EXPECT_TRUE(TensorNear((*out)[2], Make<float>({nan, nan, nan}, {3})));
  EXPECT_TRUE(TensorNear((*out)[3], Tensor(DType::kFloat32, TensorShape({0}))));
}

TEST(MathOpsTest, ReductionShapeInferenceWithoutConstantAxis) {
  Scope root = ops::NewRootScope();
  Output x = ops::Placeholder(root, DType::kFloat32, TensorShape({2, 1, 4}));
  Output axis = ops::Placeholder(root, DType::kInt32);
  EXPECT_EQ(ops::ReduceSum(root, x, axis, true).shape(),
            TensorShape({kUnknownDim, 1, kUnknownDim}));
  EXPECT_TRUE(ops::ReduceSum(root, x, axis).shape().unknown_rank());
  ASSERT_TRUE(root.ok()) << root.status();
}

TEST(MathOpsTest, ReductionAxisOutOfRangeFailsAtBuildTime) {
  for (int64_t axis : {2, -3}) {
    Scope root = ops::NewRootScope();
    ops::ReduceSum(root, ops::Const(root, Make<float>(Values(6, 1), {2, 3})), {axis});
    EXPECT_TRUE(StatusHas(
        root.status(), absl::StatusCode::kInvalidArgument,
        absl::StrCat("reduction axis ", axis, " is out of range for input of shape [2,3]")));
  }
}

TEST(MathOpsTest, ReductionAxisOutOfRangeFailsAtRunTime) {
  Scope root = ops::NewRootScope();
  Output x = ops::Placeholder(root, DType::kFloat32);
  Output axis = ops::Placeholder(root, DType::kInt32);
  Output y = ops::ReduceMax(root, x, axis);
  ASSERT_TRUE(root.ok()) << root.status();
  absl::StatusOr<Tensor> out = RunScope1(
      root, y, {{x, Make<float>(Values(4, 1), {2, 2})}, {axis, Tensor::Scalar<int32_t>(5)}});
  EXPECT_TRUE(StatusHas(out.status(), absl::StatusCode::kInvalidArgument,
                        "reduction axis 5 is out of range for input of shape [2,2]"));
  EXPECT_TRUE(StatusHas(out.status(), absl::StatusCode::kInvalidArgument, "node 'Max' (Max)"));
  out = RunScope1(root, y,
                  {{x, Make<float>({1, 7, 3, 2}, {2, 2})}, {axis, Tensor::Scalar<int32_t>(-1)}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorNear(*out, Make<float>({7, 3}, {2})));
}

}  // namespace
}  // namespace sluice
