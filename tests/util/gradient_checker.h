// Gradient checking for tests: compares the Jacobian that AddGradients builds symbolically with
// central finite differences, in float64.
//
// ComputeGradientError adds the backward graph of ys with respect to xs to the scope's graph
// (feeding one-hot gradients for ys through placeholders), finalises it, and runs a Session:
//   - symbolic Jacobian: one run per element of the ys, with grad_ys one-hot on that element;
//   - numeric Jacobian: two forward runs per element of the xs, x +- delta, divided by 2 delta.
// It returns the largest absolute difference between the two. xs are fed (typically float64
// Placeholders); every x and y must be float64. An x the ys do not depend on counts as a zero
// gradient. Not thread-safe (builds on the scope).
//
//   Scope s = ops::NewRootScope();
//   Output x = ops::Placeholder(s, DType::kFloat64, TensorShape({2, 3}));
//   Output y = ops::Exp(s, x);
//   absl::StatusOr<double> err = test::ComputeGradientError(s, {x}, {x0}, {y});
//   ASSERT_TRUE(err.ok()) << err.status();
//   EXPECT_LT(*err, 1e-6);
#ifndef SLUICE_TESTS_UTIL_GRADIENT_CHECKER_H_
#define SLUICE_TESTS_UTIL_GRADIENT_CHECKER_H_

#include <vector>

#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "graph/scope.h"
#include "ops/register.h"

namespace sluice {
namespace test {

absl::StatusOr<double> ComputeGradientError(const Scope& scope, const std::vector<Output>& xs,
                                            const std::vector<Tensor>& x_values,
                                            const std::vector<Output>& ys, double delta = 1e-6);

}  // namespace test
}  // namespace sluice

#endif  // SLUICE_TESTS_UTIL_GRADIENT_CHECKER_H_
