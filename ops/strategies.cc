#include "ops/strategies.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "ops/array_ops.h"
#include "ops/base_ops.h"
#include "ops/grad_helper_ops.h"
#include "ops/math_ops.h"
#include "ops/state_ops.h"
#include "ops/variables.h"

namespace sluice {
namespace ops {
namespace {

using GradsAndVars = std::vector<std::pair<Output, Output>>;

bool Same(const Output& a, const Output& b) {
  return a.node() == b.node() && a.index() == b.index();
}

Output ScaleBy(const Scope& s, const Output& x, double factor) {
  if (x.dtype() == DType::kFloat64) return Mul(s, x, Tensor::Scalar<double>(factor));
  return Mul(s, x, Tensor::Scalar<float>(static_cast<float>(factor)));
}

Output Scale(const Scope& s, const Output& x, int n) { return ScaleBy(s, x, 1.0 / n); }

// Every replica, with the same number of variables; with `own_variables`, none shared with
// replica 0 (the local-step strategies need a copy per replica).
absl::StatusOr<std::vector<Replica>> BuildReplicas(const Scope& scope,
                                                   const std::vector<std::string>& devices,
                                                   const ReplicaModelFn& model,
                                                   bool own_variables) {
  if (devices.empty()) return absl::InvalidArgumentError("no devices");
  std::vector<Replica> replicas;
  for (int i = 0; i < static_cast<int>(devices.size()); ++i) {
    const Scope s = scope.NewSubScope(absl::StrCat("replica_", i)).WithDevice(devices[i]);
    SLUICE_ASSIGN_OR_RETURN(Replica r, model(s, i));
    if (i > 0 && r.variables.size() != replicas[0].variables.size()) {
      return absl::InvalidArgumentError(absl::StrCat("replica ", i, " has ", r.variables.size(),
                                                     " variables, replica 0 ",
                                                     replicas[0].variables.size()));
    }
    for (size_t k = 0; k < r.variables.size() && i > 0 && own_variables; ++k) {
      if (Same(r.variables[k], replicas[0].variables[k])) {
        return absl::InvalidArgumentError(
            absl::StrCat("replica ", i, " shares variable ", r.variables[k].name(),
                         " with replica 0; this strategy needs a copy per replica"));
      }
    }
    replicas.push_back(std::move(r));
  }
  return replicas;
}

// The value a variable built by VariableWithInit is initialised with.
absl::StatusOr<Output> InitialValueOf(const Scope& scope, const Output& var) {
  const Node* init = InitializerOf(scope, var);
  if (init == nullptr || init->num_inputs() < 2) {
    return absl::InvalidArgumentError(absl::StrCat("variable ", var.name(),
                                                   " has no initializer (build it with "
                                                   "ops::VariableWithInit)"));
  }
  return Output(init->input(1).node, init->input(1).index);
}

std::vector<Output> LossesOf(const std::vector<Replica>& replicas) {
  std::vector<Output> losses;
  for (const Replica& r : replicas) losses.push_back(r.loss);
  return losses;
}

// Each replica's optimizer step on `losses[i]`, and the step counter it increments. Returns
// the (gradient, variable) pairs it applies.
absl::StatusOr<GradsAndVars> AddLocalSteps(const Scope& scope,
                                           const std::vector<std::string>& devices,
                                           const std::vector<Output>& losses, Optimizer* optimizer,
                                           LocalTraining* t) {
  GradsAndVars pairs;
  for (size_t i = 0; i < devices.size(); ++i) {
    const std::vector<Output>& vars = t->replicas[i].variables;
    SLUICE_ASSIGN_OR_RETURN(
        std::vector<Output> grads,
        optimizer->ComputeGradients(scope.WithDevice(devices[i]), losses[i], vars));
    for (size_t k = 0; k < vars.size(); ++k) {
      if (grads[k].valid()) pairs.emplace_back(grads[k], vars[k]);
    }
  }
  SLUICE_ASSIGN_OR_RETURN(const Node* apply, optimizer->ApplyGradients(scope, pairs));
  const Scope on_first = scope.WithDevice(devices[0]);
  t->local_steps = VariableWithInit(on_first.WithOpName("local_steps"), Tensor::Scalar<int64_t>(0));
  t->count = AssignAdd(on_first, t->local_steps, Tensor::Scalar<int64_t>(1));
  t->train = NoOp(scope.WithOpName("train").WithControlDependencies(
      std::vector<const Node*>{apply, t->count.node()}));
  return pairs;
}

Output MeanLoss(const Scope& scope, const std::vector<Replica>& replicas) {
  return Scale(scope, AddN(scope, LossesOf(replicas)), static_cast<int>(replicas.size()));
}

// sum(x * x) over every element.
Output SumOfSquares(const Scope& s, const Output& x) {
  return ReduceSum(s, Square(s, Reshape(s, x, Tensor::FromVector<int64_t>({-1}))), {0});
}

}  // namespace

absl::StatusOr<BspTraining> BuildBsp(const Scope& scope, const std::vector<std::string>& devices,
                                     const ReplicaModelFn& model, Optimizer* optimizer,
                                     const BspOptions& options) {
  const int n = static_cast<int>(devices.size());
  BspTraining bsp;
  SLUICE_ASSIGN_OR_RETURN(bsp.replicas,
                          BuildReplicas(scope, devices, model, /*own_variables=*/false));
  std::vector<std::vector<Output>> grads(n);
  for (int i = 0; i < n; ++i) {
    const Replica& r = bsp.replicas[i];
    SLUICE_ASSIGN_OR_RETURN(
        grads[i], optimizer->ComputeGradients(scope.WithDevice(devices[i]), r.loss, r.variables));
  }
  const std::vector<Output>& vars0 = bsp.replicas[0].variables;
  GradsAndVars pairs;
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
  bsp.mean_loss = MeanLoss(scope, bsp.replicas);
  SLUICE_RETURN_IF_ERROR(scope.status());
  return bsp;
}

absl::StatusOr<LocalTraining> BuildModelAveraging(const Scope& scope,
                                                  const std::vector<std::string>& devices,
                                                  const ReplicaModelFn& model,
                                                  Optimizer* optimizer) {
  LocalTraining t;
  SLUICE_ASSIGN_OR_RETURN(t.replicas, BuildReplicas(scope, devices, model, /*own_variables=*/true));
  SLUICE_RETURN_IF_ERROR(
      AddLocalSteps(scope, devices, LossesOf(t.replicas), optimizer, &t).status());
  const int n = static_cast<int>(devices.size());
  std::vector<Output> assigns;
  for (size_t k = 0; k < t.replicas[0].variables.size(); ++k) {
    std::vector<Output> copies;
    for (const Replica& r : t.replicas) copies.push_back(r.variables[k]);
    SLUICE_ASSIGN_OR_RETURN(std::vector<Output> mean, AllReduce(scope.NewSubScope("average"),
                                                                copies, devices, ReduceOp::kMean));
    for (int i = 0; i < n; ++i) {
      assigns.push_back(Assign(scope.WithDevice(devices[i]), copies[i], mean[i]));
    }
  }
  t.communicate = NoOp(scope.WithOpName("average").WithControlDependencies(assigns));
  t.mean_loss = MeanLoss(scope, t.replicas);
  SLUICE_RETURN_IF_ERROR(scope.status());
  return t;
}

absl::StatusOr<LocalTraining> BuildElasticAveraging(const Scope& scope,
                                                    const std::vector<std::string>& devices,
                                                    const ReplicaModelFn& model,
                                                    GradientDescentOptimizer* optimizer,
                                                    double moving_rate) {
  LocalTraining t;
  SLUICE_ASSIGN_OR_RETURN(t.replicas, BuildReplicas(scope, devices, model, /*own_variables=*/true));
  // The elastic step applies the local step's gradients, after reading the differences.
  SLUICE_ASSIGN_OR_RETURN(GradsAndVars pairs,
                          AddLocalSteps(scope, devices, LossesOf(t.replicas), optimizer, &t));
  const int n = static_cast<int>(devices.size());
  const size_t num_vars = t.replicas[0].variables.size();
  // Each replica's copy of the center, starting where the variables start.
  for (int i = 0; i < n; ++i) {
    const Scope s = scope.NewSubScope(absl::StrCat("center_", i)).WithDevice(devices[i]);
    std::vector<Output> centers;
    for (const Output& x : t.replicas[i].variables) {
      SLUICE_ASSIGN_OR_RETURN(Output initial, InitialValueOf(scope, x));
      centers.push_back(VariableWithInit(s, initial));
    }
    t.centers.push_back(std::move(centers));
  }
  // Differences and their sums, all read before the step's updates.
  std::vector<std::vector<Output>> diffs(n), sums(num_vars);
  std::vector<Output> before;
  for (int i = 0; i < n; ++i) {
    for (size_t k = 0; k < num_vars; ++k) {
      diffs[i].push_back(
          Sub(scope.WithDevice(devices[i]), t.replicas[i].variables[k], t.centers[i][k]));
      before.push_back(diffs[i].back());
    }
  }
  for (size_t k = 0; k < num_vars; ++k) {
    std::vector<Output> each;
    for (int i = 0; i < n; ++i) each.push_back(diffs[i][k]);
    SLUICE_ASSIGN_OR_RETURN(
        sums[k], AllReduce(scope.NewSubScope("elastic_sum"), each, devices, ReduceOp::kSum));
    before.insert(before.end(), sums[k].begin(), sums[k].end());
  }
  SLUICE_ASSIGN_OR_RETURN(const Node* step,
                          optimizer->ApplyGradients(
                              scope.NewSubScope("elastic").WithControlDependencies(before), pairs));
  std::vector<Output> updates;
  for (int i = 0; i < n; ++i) {
    const Scope on_i = scope.WithDevice(devices[i]);
    for (size_t k = 0; k < num_vars; ++k) {
      updates.push_back(AssignSub(on_i.WithControlDependencies(std::vector<const Node*>{step}),
                                  t.replicas[i].variables[k],
                                  ScaleBy(on_i, diffs[i][k], moving_rate)));
      updates.push_back(AssignAdd(on_i, t.centers[i][k], ScaleBy(on_i, sums[k][i], moving_rate)));
    }
  }
  updates.push_back(
      AssignAdd(scope.WithDevice(devices[0]), t.local_steps, Tensor::Scalar<int64_t>(1)));
  t.communicate = NoOp(scope.WithOpName("elastic_step").WithControlDependencies(updates));
  t.mean_loss = MeanLoss(scope, t.replicas);
  SLUICE_RETURN_IF_ERROR(scope.status());
  return t;
}

absl::StatusOr<LocalTraining> BuildAdmm(const Scope& scope, const std::vector<std::string>& devices,
                                        const ReplicaModelFn& model, Optimizer* optimizer,
                                        double rho) {
  if (!(rho > 0)) return absl::InvalidArgumentError(absl::StrCat("ADMM needs rho > 0, got ", rho));
  LocalTraining t;
  SLUICE_ASSIGN_OR_RETURN(t.replicas, BuildReplicas(scope, devices, model, /*own_variables=*/true));
  const int n = static_cast<int>(devices.size());
  const size_t num_vars = t.replicas[0].variables.size();
  std::vector<Output> objectives;
  for (int i = 0; i < n; ++i) {
    const Scope s = scope.NewSubScope(absl::StrCat("admm_", i)).WithDevice(devices[i]);
    std::vector<Output> zs, us, penalty;
    for (const Output& x : t.replicas[i].variables) {
      SLUICE_ASSIGN_OR_RETURN(Output initial, InitialValueOf(scope, x));
      zs.push_back(VariableWithInit(s.WithOpName("z"), initial));
      us.push_back(VariableWithInit(s.WithOpName("u"), Zeros(s, x.shape(), x.dtype())));
      penalty.push_back(SumOfSquares(s, Add(s, Sub(s, x, zs.back()), us.back())));
    }
    objectives.push_back(Add(s, t.replicas[i].loss, ScaleBy(s, AddN(s, penalty), rho / 2.0)));
    t.centers.push_back(std::move(zs));
    t.duals.push_back(std::move(us));
  }
  SLUICE_RETURN_IF_ERROR(AddLocalSteps(scope, devices, objectives, optimizer, &t).status());
  std::vector<Output> updates, residuals;
  for (size_t k = 0; k < num_vars; ++k) {
    std::vector<Output> sums;
    for (int i = 0; i < n; ++i) {
      sums.push_back(Add(scope.WithDevice(devices[i]), t.replicas[i].variables[k], t.duals[i][k]));
    }
    SLUICE_ASSIGN_OR_RETURN(std::vector<Output> z, AllReduce(scope.NewSubScope("consensus"), sums,
                                                             devices, ReduceOp::kMean));
    for (int i = 0; i < n; ++i) {
      const Scope on_i = scope.WithDevice(devices[i]);
      const Output r = Sub(on_i, t.replicas[i].variables[k], z[i]);
      updates.push_back(Assign(on_i, t.centers[i][k], z[i]));
      updates.push_back(AssignAdd(on_i, t.duals[i][k], r));
      residuals.push_back(SumOfSquares(on_i, r));
    }
  }
  t.communicate = NoOp(scope.WithOpName("consensus").WithControlDependencies(updates));
  t.primal_residual = AddN(scope, residuals);
  t.mean_loss = MeanLoss(scope, t.replicas);
  SLUICE_RETURN_IF_ERROR(scope.status());
  return t;
}

}  // namespace ops
}  // namespace sluice
