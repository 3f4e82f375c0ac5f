// Helpers shared by tests: run a DSL-built graph in a local Session, make deterministic test
// data, build a dense layer, and compare tensors against reference values.
#ifndef SLUICE_TESTS_UTIL_TEST_UTIL_H_
#define SLUICE_TESTS_UTIL_TEST_UTIL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "graph/scope.h"
#include "gtest/gtest.h"
#include "runtime/session/session.h"

namespace sluice {
namespace test {

// Finalises the scope's graph, creates a Session and fetches `fetches` with `feeds`.
absl::StatusOr<std::vector<Tensor>> RunScope(
    const Scope& scope, const std::vector<Output>& fetches,
    const std::vector<std::pair<Output, Tensor>>& feeds = {});
// The same for a single fetch.
absl::StatusOr<Tensor> RunScope1(const Scope& scope, Output fetch,
                                 const std::vector<std::pair<Output, Tensor>>& feeds = {});

// A float32 vector of `n` elements 0, 0.5, 1, 1.5, ...
Tensor Ramp(int64_t n);
// A float32 tensor of `shape` with every element `value`.
Tensor Filled(const TensorShape& shape, float value);

// A tensor of T (of DTypeOf<T>) and `shape`, holding `values` cast to T, in row-major order.
template <typename T>
Tensor Make(const std::vector<double>& values, const TensorShape& shape) {
  Tensor t(DTypeOf<T>::value, shape);
  for (int64_t i = 0; i < t.num_elements(); ++i) t.data<T>()[i] = static_cast<T>(values[i]);
  return t;
}

// `n` deterministic values in [lo, hi), a function of `seed`.
std::vector<double> Values(int64_t n, uint64_t seed, double lo = -2.0, double hi = 2.0);

// Element `i` (in row-major order) of a tensor of any numeric dtype, as a double.
double At(const Tensor& t, int64_t i);

// The data of the training tests: `examples` points, uniform in [-1, 1)^2 (x, float32
// [examples, 2]), labelled with the XOR of their coordinates' signs (y, int64 [examples]): not
// linearly separable, so a hidden layer matters. Seeded: every call gives the same data.
void MakeData(Tensor* x, Tensor* y, int64_t examples = 256);

// A dense layer without activation: MatMul(x, w) + b, its nodes built in `scope` at `loc`.
Output Dense(const Scope& scope, Output x, Output w, Output b,
             SourceLocation loc = SourceLocation::Current());

// gtest assertion: same dtype and shape, and every element within atol + rtol*|expected|.
::testing::AssertionResult TensorNear(const Tensor& actual, const Tensor& expected,
                                      double atol = 1e-5, double rtol = 1e-5);
// gtest assertion: bitwise equal dtype, shape and values.
::testing::AssertionResult TensorEq(const Tensor& actual, const Tensor& expected);

// "expected status containing <substring>" check.
::testing::AssertionResult StatusHas(const absl::Status& status, absl::StatusCode code,
                                     absl::string_view substring);

}  // namespace test
}  // namespace sluice

#endif  // SLUICE_TESTS_UTIL_TEST_UTIL_H_
