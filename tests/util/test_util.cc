#include "tests/util/test_util.h"

#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "ops/math_ops.h"

namespace sluice {
namespace test {

absl::StatusOr<std::vector<Tensor>> RunScope(const Scope& scope, const std::vector<Output>& fetches,
                                             const std::vector<std::pair<Output, Tensor>>& feeds) {
  absl::StatusOr<std::shared_ptr<const Graph>> graph = scope.Finalize();
  if (!graph.ok()) return graph.status();
  absl::StatusOr<std::unique_ptr<Session>> session = Session::Create(*graph);
  if (!session.ok()) return session.status();
  std::vector<Tensor> out;
  absl::Status s = (*session)->Run(feeds, fetches, &out);
  if (!s.ok()) return s;
  return out;
}

Tensor Filled(const TensorShape& shape, float value) {
  Tensor t(DType::kFloat32, shape);
  t.flat<float>().setConstant(value);
  return t;
}

Tensor Ramp(int64_t n) {
  Tensor t(DType::kFloat32, TensorShape({n}));
  for (int64_t i = 0; i < n; ++i) t.data<float>()[i] = static_cast<float>(i) * 0.5f;
  return t;
}

absl::StatusOr<Tensor> RunScope1(const Scope& scope, Output fetch,
                                 const std::vector<std::pair<Output, Tensor>>& feeds) {
  absl::StatusOr<std::vector<Tensor>> out = RunScope(scope, {fetch}, feeds);
  if (!out.ok()) return out.status();
  return (*out)[0];
}

std::vector<double> Values(int64_t n, uint64_t seed, double lo, double hi) {
  std::vector<double> v(n);
  uint64_t s = seed * 6364136223846793005ULL + 1442695040888963407ULL;
  for (auto& x : v) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    x = lo + (hi - lo) * static_cast<double>(s >> 11) / static_cast<double>(1ULL << 53);
  }
  return v;
}

double At(const Tensor& t, int64_t i) {
  double v = 0;
  SLUICE_SWITCH_DTYPE(t.dtype(), T, { v = static_cast<double>(t.data<T>()[i]); }, {});
  return v;
}

void MakeData(Tensor* x, Tensor* y, int64_t examples) {
  std::mt19937 rng(2024);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  *x = Tensor(DType::kFloat32, TensorShape({examples, 2}));
  *y = Tensor(DType::kInt64, TensorShape({examples}));
  for (int64_t i = 0; i < examples; ++i) {
    const float a = u(rng), b = u(rng);
    x->matrix<float>()(i, 0) = a;
    x->matrix<float>()(i, 1) = b;
    y->data<int64_t>()[i] = (a > 0) != (b > 0) ? 1 : 0;
  }
}

Output Dense(const Scope& scope, Output x, Output w, Output b, SourceLocation loc) {
  return ops::Add(scope, ops::MatMul(scope, x, w, false, false, loc), b, loc);
}

::testing::AssertionResult TensorNear(const Tensor& actual, const Tensor& expected, double atol,
                                      double rtol) {
  if (actual.dtype() != expected.dtype()) {
    return ::testing::AssertionFailure()
           << "dtype " << DTypeName(actual.dtype()) << " != " << DTypeName(expected.dtype());
  }
  if (actual.shape() != expected.shape()) {
    return ::testing::AssertionFailure()
           << "shape " << actual.shape().DebugString() << " != " << expected.shape().DebugString();
  }
  for (int64_t i = 0; i < actual.num_elements(); ++i) {
    double a = At(actual, i), e = At(expected, i);
    bool both_nan = std::isnan(a) && std::isnan(e);
    if (!both_nan && !(a == e || std::fabs(a - e) <= atol + rtol * std::fabs(e))) {
      return ::testing::AssertionFailure()
             << "element " << i << ": " << a << " vs expected " << e << "\nactual   "
             << actual.DebugString(16) << "\nexpected " << expected.DebugString(16);
    }
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult TensorEq(const Tensor& actual, const Tensor& expected) {
  if (actual.BitwiseEquals(expected)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "\nactual   " << actual.DebugString(16) << "\nexpected " << expected.DebugString(16);
}

::testing::AssertionResult StatusHas(const absl::Status& status, absl::StatusCode code,
                                     absl::string_view substring) {
  if (status.code() == code && status.message().find(substring) != absl::string_view::npos) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "expected " << absl::StatusCodeToString(code) << " containing \"" << substring
         << "\", got " << status.ToString();
}

}  // namespace test
}  // namespace sluice
