// Tests for ops/nn_ops.h: activations, softmax and the cross-entropy ops against loop references
// written here, for float32 and float64, including logits of 1000 and more (numerical
// stability) and shape / label errors at graph-build time and at run time.
#include "ops/nn_ops.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "ops/all_ops.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

using test::Make;
using test::RunScope;
using test::RunScope1;
using test::StatusHas;
using test::TensorNear;

// Deterministic values in [-3, 3) unless [lo, hi) is given (test::Values' default is [-2, 2)).
std::vector<double> Values(int64_t n, uint64_t seed, double lo = -3.0, double hi = 3.0) {
  return test::Values(n, seed, lo, hi);
}

// log(sum(exp(row))) in long double, shifted by the row maximum.
long double LogSumExp(const double* row, int64_t n) {
  long double max = row[0];
  for (int64_t j = 1; j < n; ++j) max = std::max<long double>(max, row[j]);
  long double sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += std::exp(static_cast<long double>(row[j]) - max);
  return max + std::log(sum);
}

// Softmax (or log-softmax) of each row of `x` (rows of length `cols`).
std::vector<double> ReferenceSoftmax(const std::vector<double>& x, int64_t cols, bool log) {
  std::vector<double> out(x.size());
  for (size_t r = 0; r < x.size() / cols; ++r) {
    const double* row = &x[r * cols];
    long double lse = LogSumExp(row, cols);
    for (int64_t j = 0; j < cols; ++j) {
      long double ls = row[j] - lse;
      out[r * cols + j] = static_cast<double>(log ? ls : std::exp(ls));
    }
  }
  return out;
}

template <typename T>
std::vector<double> Rounded(const std::vector<double>& v) {
  std::vector<double> out;
  for (double x : v) out.push_back(static_cast<T>(x));
  return out;
}

template <typename T>
class NnTypedTest : public ::testing::Test {};
using FloatTypes = ::testing::Types<float, double>;
TYPED_TEST_SUITE(NnTypedTest, FloatTypes);

template <typename T>
constexpr double Tol() {
  return std::is_same_v<T, float> ? 1e-5 : 1e-12;
}

TYPED_TEST(NnTypedTest, ActivationsMatchStdFunctions) {
  using T = TypeParam;
  const TensorShape shape({4, 9});
  std::vector<double> v = Rounded<T>(Values(36, 1, -6, 6));
  v[0] = 0;
  Scope root = ops::NewRootScope();
  Output x = ops::Const(root, Make<T>(v, shape));
  absl::StatusOr<std::vector<Tensor>> out =
      RunScope(root, {ops::Relu(root, x), ops::Sigmoid(root, x), ops::Tanh(root, x)});
  ASSERT_TRUE(out.ok()) << out.status();
  std::vector<double> relu, sigmoid, tanh;
  for (double a : v) {
    relu.push_back(a > 0 ? a : 0);
    sigmoid.push_back(1 / (1 + std::exp(-a)));
    tanh.push_back(std::tanh(a));
  }
  EXPECT_TRUE(TensorNear((*out)[0], Make<T>(relu, shape), 0, 0));
  EXPECT_TRUE(TensorNear((*out)[1], Make<T>(sigmoid, shape), Tol<T>(), Tol<T>()));
  EXPECT_TRUE(TensorNear((*out)[2], Make<T>(tanh, shape), Tol<T>(), Tol<T>()));
}

TEST(NnOpsTest, ReluOfIntegers) {
  Scope root = ops::NewRootScope();
  absl::StatusOr<Tensor> out =
      RunScope1(root, ops::Relu(root, ops::Const(root, Make<int32_t>({-3, 0, 5}, {3}))));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorNear(*out, Make<int32_t>({0, 0, 5}, {3})));
}

TEST(NnOpsTest, LargeActivationsUseThreadPoolAndMatch) {
  const int64_t n = 50000;
  std::vector<double> v = Rounded<float>(Values(n, 2, -10, 10));
  Scope root = ops::NewRootScope();
  Output x = ops::Const(root, Make<float>(v, {n}));
  absl::StatusOr<std::vector<Tensor>> out =
      RunScope(root, {ops::Relu(root, x), ops::Sigmoid(root, x)});
  ASSERT_TRUE(out.ok()) << out.status();
  std::vector<double> relu, sigmoid;
  for (double a : v) {
    relu.push_back(a > 0 ? a : 0);
    sigmoid.push_back(1 / (1 + std::exp(-a)));
  }
  EXPECT_TRUE(TensorNear((*out)[0], Make<float>(relu, {n}), 0, 0));
  EXPECT_TRUE(TensorNear((*out)[1], Make<float>(sigmoid, {n}), 1e-6, 1e-5));
}

TYPED_TEST(NnTypedTest, SoftmaxAndLogSoftmaxMatchReference) {
  using T = TypeParam;
  for (TensorShape shape : {TensorShape({3, 5}), TensorShape({2, 2, 3}), TensorShape({4}),
                            TensorShape({1, 1}), TensorShape({200, 100})}) {
    SCOPED_TRACE(shape.DebugString());
    std::vector<double> v = Rounded<T>(Values(shape.num_elements(), 7));
    const int64_t cols = shape.dim(shape.rank() - 1);
    Scope root = ops::NewRootScope();
    Output x = ops::Const(root, Make<T>(v, shape));
    Output sm = ops::Softmax(root, x), lsm = ops::LogSoftmax(root, x);
    EXPECT_EQ(sm.shape(), shape);
    EXPECT_EQ(lsm.shape(), shape);
    absl::StatusOr<std::vector<Tensor>> out = RunScope(root, {sm, lsm});
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_TRUE(TensorNear((*out)[0], Make<T>(ReferenceSoftmax(v, cols, false), shape), Tol<T>(),
                           Tol<T>()));
    EXPECT_TRUE(
        TensorNear((*out)[1], Make<T>(ReferenceSoftmax(v, cols, true), shape), Tol<T>(), Tol<T>()));
  }
}

TYPED_TEST(NnTypedTest, SoftmaxIsStableForLargeLogits) {
  using T = TypeParam;
  // Row 0 is [0, 1, 2] shifted by 1000; row 1 spans 2000.
  Scope root = ops::NewRootScope();
  Output x = ops::Const(root, Make<T>({1000, 1001, 1002, -1000, 0, 1000}, {2, 3}));
  absl::StatusOr<std::vector<Tensor>> out =
      RunScope(root, {ops::Softmax(root, x), ops::LogSoftmax(root, x)});
  ASSERT_TRUE(out.ok()) << out.status();
  const double z = 1 + std::exp(1.0) + std::exp(2.0);
  EXPECT_TRUE(TensorNear((*out)[0],
                         Make<T>({1 / z, std::exp(1.0) / z, std::exp(2.0) / z, 0, 0, 1}, {2, 3}),
                         Tol<T>(), Tol<T>()));
  const double lz = std::log(z);
  EXPECT_TRUE(TensorNear((*out)[1], Make<T>({-lz, 1 - lz, 2 - lz, -2000, -1000, 0}, {2, 3}),
                         Tol<T>(), Tol<T>()));
}

TEST(NnOpsTest, SoftmaxOfScalarFailsAtBuildTime) {
  Scope root = ops::NewRootScope();
  ops::Softmax(root, ops::Const(root, Tensor::Scalar<float>(1)));
  EXPECT_TRUE(StatusHas(root.status(), absl::StatusCode::kInvalidArgument,
                        "Softmax requires logits of rank >= 1, got shape []"));
}

TEST(NnOpsTest, SoftmaxOfEmptyLastAxis) {
  Scope root = ops::NewRootScope();
  absl::StatusOr<Tensor> out = RunScope1(
      root, ops::Softmax(root, ops::Const(root, Tensor(DType::kFloat32, TensorShape({2, 0})))));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->shape(), TensorShape({2, 0}));
}

// ---------------------------------------------------------------------------------------------
// SoftmaxCrossEntropyWithLogits.

// loss[i] = -sum_j labels[i,j] * log_softmax[i,j]; backprop = softmax - labels.
void ReferenceXent(const std::vector<double>& x, const std::vector<double>& labels, int64_t cols,
                   std::vector<double>* loss, std::vector<double>* backprop) {
  std::vector<double> ls = ReferenceSoftmax(x, cols, true);
  loss->assign(x.size() / cols, 0);
  backprop->resize(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    (*loss)[i / cols] -= labels[i] * ls[i];
    (*backprop)[i] = std::exp(ls[i]) - labels[i];
  }
}

TYPED_TEST(NnTypedTest, SoftmaxCrossEntropyMatchesReference) {
  using T = TypeParam;
  for (int64_t batch : {4, 300}) {
    const int64_t classes = 7;
    std::vector<double> x = Rounded<T>(Values(batch * classes, 3));
    std::vector<double> labels = Values(batch * classes, 4, 0, 1);
    for (int64_t b = 0; b < batch; ++b) {
      double sum = 0;
      for (int64_t j = 0; j < classes; ++j) sum += labels[b * classes + j];
      for (int64_t j = 0; j < classes; ++j) labels[b * classes + j] /= sum;
    }
    labels = Rounded<T>(labels);
    Scope root = ops::NewRootScope();
    std::vector<Output> xent =
        ops::SoftmaxCrossEntropyWithLogits(root, ops::Const(root, Make<T>(x, {batch, classes})),
                                           ops::Const(root, Make<T>(labels, {batch, classes})));
    ASSERT_EQ(xent.size(), 2u) << root.status();
    EXPECT_EQ(xent[0].shape(), TensorShape({batch}));
    EXPECT_EQ(xent[1].shape(), TensorShape({batch, classes}));
    absl::StatusOr<std::vector<Tensor>> out = RunScope(root, xent);
    ASSERT_TRUE(out.ok()) << out.status();
    std::vector<double> loss, backprop;
    ReferenceXent(x, labels, classes, &loss, &backprop);
    EXPECT_TRUE(TensorNear((*out)[0], Make<T>(loss, {batch}), Tol<T>(), Tol<T>()));
    EXPECT_TRUE(TensorNear((*out)[1], Make<T>(backprop, {batch, classes}), Tol<T>(), Tol<T>()));
  }
}

TYPED_TEST(NnTypedTest, SoftmaxCrossEntropyIsStableForLargeLogits) {
  using T = TypeParam;
  // log_softmax of [1000, 0, -1000] is [0, -1000, -2000] (to far below float precision).
  Scope root = ops::NewRootScope();
  std::vector<Output> xent = ops::SoftmaxCrossEntropyWithLogits(
      root, ops::Const(root, Make<T>({1000, 0, -1000, 1000, 1000, 1000}, {2, 3})),
      ops::Const(root, Make<T>({0, 0, 1, 0.5, 0.5, 0}, {2, 3})));
  absl::StatusOr<std::vector<Tensor>> out = RunScope(root, xent);
  ASSERT_TRUE(out.ok()) << out.status();
  const double third = 1.0 / 3;
  EXPECT_TRUE(TensorNear((*out)[0], Make<T>({2000, std::log(3.0)}, {2}), Tol<T>(), Tol<T>()));
  EXPECT_TRUE(TensorNear((*out)[1], Make<T>({1, 0, -1, third - 0.5, third - 0.5, third}, {2, 3}),
                         Tol<T>(), Tol<T>()));
}

TEST(NnOpsTest, SoftmaxCrossEntropyShapeMismatchFailsAtBuildTime) {
  Scope root = ops::NewRootScope();
  std::vector<Output> xent =
      ops::SoftmaxCrossEntropyWithLogits(root, ops::Const(root, Make<float>(Values(6, 1), {2, 3})),
                                         ops::Const(root, Make<float>(Values(8, 2), {2, 4})));
  EXPECT_TRUE(xent.empty());
  EXPECT_TRUE(StatusHas(root.status(), absl::StatusCode::kInvalidArgument,
                        "features and labels must have the same shape: features [2,3] vs "
                        "labels [2,4]"));
}

TEST(NnOpsTest, SoftmaxCrossEntropyRankErrorAtBuildTime) {
  Scope root = ops::NewRootScope();
  ops::SoftmaxCrossEntropyWithLogits(root, ops::Const(root, Make<float>(Values(3, 1), {3})),
                                     ops::Const(root, Make<float>(Values(3, 2), {3})));
  EXPECT_TRUE(StatusHas(root.status(), absl::StatusCode::kInvalidArgument,
                        "SoftmaxCrossEntropyWithLogits requires rank-2 features, got shape [3]"));
}

TEST(NnOpsTest, SoftmaxCrossEntropyShapeMismatchFailsAtRunTime) {
  Scope root = ops::NewRootScope();
  Output f = ops::Placeholder(root, DType::kFloat32);
  Output l = ops::Placeholder(root, DType::kFloat32);
  std::vector<Output> xent = ops::SoftmaxCrossEntropyWithLogits(root, f, l);
  ASSERT_TRUE(root.ok()) << root.status();
  absl::StatusOr<std::vector<Tensor>> out = RunScope(
      root, xent, {{f, Make<float>(Values(6, 1), {2, 3})}, {l, Make<float>(Values(8, 2), {2, 4})}});
  EXPECT_TRUE(StatusHas(out.status(), absl::StatusCode::kInvalidArgument,
                        "features and labels must have the same shape: features [2,3] vs "
                        "labels [2,4]"));
  EXPECT_TRUE(StatusHas(out.status(), absl::StatusCode::kInvalidArgument,
                        "node 'SoftmaxCrossEntropyWithLogits'"));
}

// ---------------------------------------------------------------------------------------------
// SparseSoftmaxCrossEntropyWithLogits.

template <typename T, typename L>
void CheckSparseXent(int64_t batch, int64_t classes, uint64_t seed) {
  SCOPED_TRACE(absl::StrCat("batch ", batch, " classes ", classes, " label dtype ",
                            DTypeName(DTypeOf<L>::value)));
  std::vector<double> x = Rounded<T>(Values(batch * classes, seed));
  std::vector<double> labels(batch), dense(batch * classes, 0);
  for (int64_t b = 0; b < batch; ++b) {
    labels[b] = static_cast<double>((b * 5 + seed) % classes);
    dense[b * classes + static_cast<int64_t>(labels[b])] = 1;
  }
  Scope root = ops::NewRootScope();
  std::vector<Output> xent =
      ops::SparseSoftmaxCrossEntropyWithLogits(root, ops::Const(root, Make<T>(x, {batch, classes})),
                                               ops::Const(root, Make<L>(labels, {batch})));
  ASSERT_EQ(xent.size(), 2u) << root.status();
  EXPECT_EQ(xent[0].shape(), TensorShape({batch}));
  EXPECT_EQ(xent[1].shape(), TensorShape({batch, classes}));
  absl::StatusOr<std::vector<Tensor>> out = RunScope(root, xent);
  ASSERT_TRUE(out.ok()) << out.status();
  std::vector<double> loss, backprop;
  ReferenceXent(x, dense, classes, &loss, &backprop);
  EXPECT_TRUE(TensorNear((*out)[0], Make<T>(loss, {batch}), Tol<T>(), Tol<T>()));
  EXPECT_TRUE(TensorNear((*out)[1], Make<T>(backprop, {batch, classes}), Tol<T>(), Tol<T>()));
}

TYPED_TEST(NnTypedTest, SparseSoftmaxCrossEntropyMatchesReference) {
  using T = TypeParam;
  CheckSparseXent<T, int32_t>(4, 5, 1);
  CheckSparseXent<T, int64_t>(4, 5, 2);
  CheckSparseXent<T, int64_t>(1, 1, 3);
  CheckSparseXent<T, int32_t>(500, 10, 4);
}

TYPED_TEST(NnTypedTest, SparseSoftmaxCrossEntropyIsStableForLargeLogits) {
  using T = TypeParam;
  Scope root = ops::NewRootScope();
  std::vector<Output> xent = ops::SparseSoftmaxCrossEntropyWithLogits(
      root, ops::Const(root, Make<T>({1000, 0, -1000, 1000, 1001, 1002}, {2, 3})),
      ops::Const(root, Make<int64_t>({2, 0}, {2})));
  absl::StatusOr<std::vector<Tensor>> out = RunScope(root, xent);
  ASSERT_TRUE(out.ok()) << out.status();
  const double z = 1 + std::exp(1.0) + std::exp(2.0);
  EXPECT_TRUE(TensorNear((*out)[0], Make<T>({2000, std::log(z)}, {2}), Tol<T>(), Tol<T>()));
  EXPECT_TRUE(TensorNear(
      (*out)[1], Make<T>({1, 0, -1, 1 / z - 1, std::exp(1.0) / z, std::exp(2.0) / z}, {2, 3}),
      Tol<T>(), Tol<T>()));
}

TEST(NnOpsTest, SparseLabelOutOfRangeFailsAtRunTime) {
  for (int64_t bad : {7, -1, 3}) {
    Scope root = ops::NewRootScope();
    Output labels = ops::Placeholder(root, DType::kInt32, TensorShape({2}));
    std::vector<Output> xent = ops::SparseSoftmaxCrossEntropyWithLogits(
        root, ops::Const(root, Make<float>(Values(6, 1), {2, 3})), labels);
    ASSERT_TRUE(root.ok()) << root.status();
    absl::StatusOr<std::vector<Tensor>> out =
        RunScope(root, xent, {{labels, Make<int32_t>({0, static_cast<double>(bad)}, {2})}});
    EXPECT_TRUE(StatusHas(out.status(), absl::StatusCode::kInvalidArgument,
                          absl::StrCat("label value ", bad,
                                       " at index 1 is outside the valid range of classes "
                                       "[0, 3)")));
  }
}

TEST(NnOpsTest, SparseShapeErrorsAtBuildTime) {
  Scope root = ops::NewRootScope();
  ops::SparseSoftmaxCrossEntropyWithLogits(root,
                                           ops::Const(root, Make<float>(Values(6, 1), {2, 3})),
                                           ops::Const(root, Make<int64_t>({0, 1, 2}, {3})));
  EXPECT_TRUE(StatusHas(root.status(), absl::StatusCode::kInvalidArgument,
                        "labels must have one entry per row of features: features [2,3] vs "
                        "labels [3]"));

  Scope rank = ops::NewRootScope();
  ops::SparseSoftmaxCrossEntropyWithLogits(rank,
                                           ops::Const(rank, Make<float>(Values(6, 1), {2, 3})),
                                           ops::Const(rank, Make<int64_t>({0, 1}, {2, 1})));
  EXPECT_TRUE(StatusHas(rank.status(), absl::StatusCode::kInvalidArgument,
                        "SparseSoftmaxCrossEntropyWithLogits requires rank-1 labels, got shape "
                        "[2,1]"));

  Scope dtype = ops::NewRootScope();
  ops::SparseSoftmaxCrossEntropyWithLogits(dtype,
                                           ops::Const(dtype, Make<float>(Values(6, 1), {2, 3})),
                                           ops::Const(dtype, Make<float>({0, 1}, {2})));
  EXPECT_TRUE(StatusHas(dtype.status(), absl::StatusCode::kInvalidArgument, "Tlabels"));
}

TEST(NnOpsTest, SparseShapeMismatchFailsAtRunTime) {
  Scope root = ops::NewRootScope();
  Output f = ops::Placeholder(root, DType::kFloat64);
  Output l = ops::Placeholder(root, DType::kInt64);
  std::vector<Output> xent = ops::SparseSoftmaxCrossEntropyWithLogits(root, f, l);
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_EQ(xent[1].shape(), TensorShape({kUnknownDim, kUnknownDim}));
  absl::StatusOr<std::vector<Tensor>> out =
      RunScope(root, xent, {{f, Make<double>(Values(6, 1), {2, 3})}, {l, Make<int64_t>({0}, {1})}});
  EXPECT_TRUE(StatusHas(out.status(), absl::StatusCode::kInvalidArgument,
                        "labels must have one entry per row of features: features [2,3] vs "
                        "labels [1]"));
}

}  // namespace
}  // namespace sluice
