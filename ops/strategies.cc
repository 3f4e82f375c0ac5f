#include "ops/strategies.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "ops/array_ops.h"
#include "ops/base_ops.h"
#include "ops/grad_helper_ops.h"
#include "ops/math_ops.h"
#include "ops/state_ops.h"

namespace sluice {
namespace ops {
namespace {

bool Same(const Output& a, const Output& b) {
  return a.node() == b.node() && a.index() == b.index();
}

Output Scale(const Scope& s, const Output& x, int n) {
  if (x.dtype() == DType::kFloat64) return Mul(s, x, Tensor::Scalar<double>(1.0 / n));
  return Mul(s, x, Tensor::Scalar<float>(1.0f / static_cast<float>(n)));
}

}  // namespace

absl::StatusOr<BspTraining> BuildBsp(const Scope& scope, const std::vector<std::string>& devices,
                                     const ReplicaModelFn& model, Optimizer* optimizer,
                                     const BspOptions& options) {
  const int n = static_cast<int>(devices.size());
  if (n == 0) return absl::InvalidArgumentError("BuildBsp: no devices");
  BspTraining bsp;
  std::vector<std::vector<Output>> grads(n);
  for (int i = 0; i < n; ++i) {
    const Scope s = scope.NewSubScope(absl::StrCat("replica_", i)).WithDevice(devices[i]);
    SLUICE_ASSIGN_OR_RETURN(Replica r, model(s, i));
    if (i > 0 && r.variables.size() != bsp.replicas[0].variables.size()) {
      return absl::InvalidArgumentError(absl::StrCat("BuildBsp: replica ", i, " has ",
                                                     r.variables.size(), " variables, replica 0 ",
                                                     bsp.replicas[0].variables.size()));
    }
    SLUICE_ASSIGN_OR_RETURN(grads[i], optimizer->ComputeGradients(s, r.loss, r.variables));
    bsp.replicas.push_back(std::move(r));
  }
  const std::vector<Output>& vars0 = bsp.replicas[0].variables;
  std::vector<std::pair<Output, Output>> pairs;
  std::vector<int> reduced;  // Own variables with gradients, last created first.
  for (int k = static_cast<int>(vars0.size()) - 1; k >= 0; --k) {
    bool shared = true, differentiable = true;
    for (int i = 0; i < n; ++i) {
      shared = shared && Same(bsp.replicas[i].variables[k], vars0[k]);
      differentiable = differentiable && grads[i][k].valid();
    }
    if (!differentiable) continue;
    if (!shared) {
      reduced.push_back(k);
      continue;
    }
    // A shared variable: average the replicas' gradients where it lives, update it once.
    const Scope home = OnDeviceOf(scope.NewSubScope("aggregate"), vars0[k]);
    std::vector<Output> each;
    for (int i = 0; i < n; ++i) each.push_back(grads[i][k]);
    pairs.emplace_back(Scale(home, AddN(home, each), n), vars0[k]);
  }
  if (!reduced.empty()) {
    std::vector<std::vector<Output>> lists(n);
    for (int i = 0; i < n; ++i) {
      const Scope on_i = scope.WithDevice(devices[i]);
      for (int k : reduced) {
        // A gradient's static shape can be partial; the variable's is known.
        lists[i].push_back(
            Reshape(on_i, grads[i][k], Tensor::FromVector<int64_t>(vars0[k].shape().dims())));
      }
    }
    bsp.buckets = PlanBuckets(lists[0], options.bucket_bytes);
    SLUICE_ASSIGN_OR_RETURN(std::vector<std::vector<Output>> averaged,
                            AllReduceInBuckets(scope, lists, devices, ReduceOp::kMean,
                                               options.bucket_bytes, options.algorithm));
    for (int i = 0; i < n; ++i) {
      for (size_t j = 0; j < reduced.size(); ++j) {
        pairs.emplace_back(averaged[i][j], bsp.replicas[i].variables[reduced[j]]);
      }
    }
  }
  SLUICE_ASSIGN_OR_RETURN(bsp.train, optimizer->ApplyGradients(scope, pairs));
  // sync: replica 0's own variables broadcast to the others.
  std::vector<Output> assigns;
  for (int k : reduced) {
    SLUICE_ASSIGN_OR_RETURN(std::vector<Output> copies,
                            Broadcast(scope.NewSubScope("sync"), vars0[k], 0, devices));
    for (int i = 1; i < n; ++i) {
      assigns.push_back(
          Assign(scope.WithDevice(devices[i]), bsp.replicas[i].variables[k], copies[i]));
    }
  }
  bsp.sync = NoOp(scope.NewSubScope("sync").WithControlDependencies(assigns));
  std::vector<Output> losses;
  for (const Replica& r : bsp.replicas) losses.push_back(r.loss);
  bsp.mean_loss = Scale(scope, AddN(scope, losses), n);
  SLUICE_RETURN_IF_ERROR(scope.status());
  return bsp;
}

}  // namespace ops
}  // namespace sluice
