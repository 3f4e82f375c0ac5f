#include "tests/util/gradient_checker.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "ops/base_ops.h"
#include "ops/gradients.h"
#include "runtime/session/session.h"

namespace sluice {
namespace test {

absl::StatusOr<double> ComputeGradientError(const Scope& scope, const std::vector<Output>& xs,
                                            const std::vector<Tensor>& x_values,
                                            const std::vector<Output>& ys, double delta) {
  if (xs.size() != x_values.size()) {
    return absl::InvalidArgumentError("gradient checker: one value per x is needed");
  }
  for (const auto& group : {xs, ys}) {
    for (const Output& o : group) {
      if (!o.valid() || o.dtype() != DType::kFloat64) {
        return absl::InvalidArgumentError(absl::StrCat(
            "gradient checker: ", o.valid() ? o.name() : "<invalid>", " is not float64"));
      }
    }
  }
  const Scope s = scope.NewSubScope("gradient_checker");
  std::vector<Output> dys;
  for (size_t j = 0; j < ys.size(); ++j) dys.push_back(ops::Placeholder(s, DType::kFloat64));
  std::vector<Output> dxs;
  SLUICE_RETURN_IF_ERROR(AddGradients(s, ys, xs, dys, &dxs));
  SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<const Graph> graph, scope.Finalize());
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, Session::Create(graph));

  auto feeds_for = [&](const std::vector<Tensor>& values) {
    std::vector<std::pair<Output, Tensor>> feeds;
    for (size_t i = 0; i < xs.size(); ++i) feeds.emplace_back(xs[i], values[i]);
    return feeds;
  };
  // Forward values, for the shapes of ys.
  std::vector<Tensor> y0;
  SLUICE_RETURN_IF_ERROR(session->Run(feeds_for(x_values), ys, &y0));
  int64_t rows = 0, cols = 0;
  for (const Tensor& y : y0) rows += y.num_elements();
  for (const Tensor& x : x_values) cols += x.num_elements();

  // Symbolic Jacobian, one row per y element.
  std::vector<double> symbolic(rows * cols, 0.0);
  std::vector<Output> fetch;
  std::vector<int> fetch_of_x(xs.size(), -1);
  for (size_t i = 0; i < xs.size(); ++i) {
    if (dxs[i].valid()) {
      fetch_of_x[i] = static_cast<int>(fetch.size());
      fetch.push_back(dxs[i]);
    }
  }
  int64_t row = 0;
  for (size_t j = 0; j < ys.size(); ++j) {
    for (int64_t e = 0; e < y0[j].num_elements(); ++e, ++row) {
      std::vector<std::pair<Output, Tensor>> feeds = feeds_for(x_values);
      for (size_t k = 0; k < ys.size(); ++k) {
        Tensor dy(DType::kFloat64, y0[k].shape());
        dy.flat<double>().setZero();
        if (k == j) dy.data<double>()[e] = 1.0;
        feeds.emplace_back(dys[k], dy);
      }
      std::vector<Tensor> out;
      if (fetch.empty()) continue;
      SLUICE_RETURN_IF_ERROR(session->Run(feeds, fetch, &out));
      int64_t col = 0;
      for (size_t i = 0; i < xs.size(); ++i) {
        const int64_t n = x_values[i].num_elements();
        if (fetch_of_x[i] >= 0) {
          const Tensor& g = out[fetch_of_x[i]];
          if (g.num_elements() != n) {
            return absl::InternalError(absl::StrCat("gradient of x ", i, " has shape ",
                                                    g.shape().DebugString(), " but x has shape ",
                                                    x_values[i].shape().DebugString()));
          }
          for (int64_t k = 0; k < n; ++k) symbolic[row * cols + col + k] = g.data<double>()[k];
        }
        col += n;
      }
    }
  }

  // Numeric Jacobian, one column per x element.
  double max_error = 0.0;
  int64_t col = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    for (int64_t k = 0; k < x_values[i].num_elements(); ++k, ++col) {
      std::vector<Tensor> plus = x_values, minus = x_values;
      plus[i] = x_values[i].DeepCopy();
      minus[i] = x_values[i].DeepCopy();
      plus[i].data<double>()[k] += delta;
      minus[i].data<double>()[k] -= delta;
      std::vector<Tensor> yp, ym;
      SLUICE_RETURN_IF_ERROR(session->Run(feeds_for(plus), ys, &yp));
      SLUICE_RETURN_IF_ERROR(session->Run(feeds_for(minus), ys, &ym));
      int64_t r = 0;
      for (size_t j = 0; j < ys.size(); ++j) {
        for (int64_t e = 0; e < yp[j].num_elements(); ++e, ++r) {
          const double numeric = (yp[j].data<double>()[e] - ym[j].data<double>()[e]) / (2 * delta);
          const double err = std::fabs(numeric - symbolic[r * cols + col]);
          if (std::isnan(err)) return std::numeric_limits<double>::infinity();
          max_error = std::max(max_error, err);
        }
      }
    }
  }
  return max_error;
}

}  // namespace test
}  // namespace sluice
