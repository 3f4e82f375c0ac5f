// Synchronous data-parallel training built into one graph (in-graph replication), the C++
// counterparts of sl.train's strategies (docs/strategies.md, equations in TRAINING.md): a model
// function builds one replica per device; each Build* adds the strategy's ops.
//   BuildBsp              one synchronous step, w <- w - eta * (1/N) * sum_i g_i(w)
//   BuildModelAveraging   local steps, and an op setting every x_i to (1/N) sum_j x_j
//   BuildElasticAveraging local steps, and the synchronous elastic step (plain SGD)
//   BuildAdmm             local steps on f_i + (rho/2)||x - z + u_i||^2, and the consensus update
// The client runs the communication op on its schedule (every K-th step), counting steps with
// the `local_steps` variable the train ops increment (fetch `count`), so a checkpoint keeps it.
//
// BuildBsp:
// Variables a replica makes for itself are averaged by all-reduces over gradient buckets fixed
// here (ops::AllReduceInBuckets; last layer's gradients first, the order backward produces
// them), and each replica applies the same update; variables the replicas share (made once,
// e.g. on a parameter server, and returned by every replica) get the replicas' gradients
// averaged on the variable's device and one update there. `sync` copies replica 0's own
// variables to the other replicas (a Broadcast): run it once after the initializer unless every
// replica initialises identically. With a batch-mean loss, N replicas with batch b take the step
// of one model with batch N*b. Built from one thread, like Scope.
//
//   auto model = [&](const Scope& s, int i) -> absl::StatusOr<ops::Replica> {
//     Output w = ops::VariableWithInit(s.WithOpName("w"), ops::Zeros(s, {784, 10}, kFloat32));
//     return ops::Replica{Loss(s, x[i], y[i], w), {w}};
//   };
//   ops::GradientDescentOptimizer sgd(0.1);
//   SLUICE_ASSIGN_OR_RETURN(ops::BspTraining bsp, ops::BuildBsp(s, devices, model, &sgd));
//   ... run init, then bsp.sync, then bsp.train once per step.
#ifndef SLUICE_OPS_STRATEGIES_H_
#define SLUICE_OPS_STRATEGIES_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "graph/scope.h"
#include "ops/collectives.h"
#include "ops/optimizers.h"

namespace sluice {
namespace ops {

// One replica: its loss and the variables it trains, in creation order (the same count and
// shapes in every replica).
struct Replica {
  Output loss;
  std::vector<Output> variables;
};

// Builds replica `index` with `scope` (its device and a "replica_<index>" name scope set).
using ReplicaModelFn = std::function<absl::StatusOr<Replica>(const Scope& scope, int index)>;

struct BspOptions {
  int64_t bucket_bytes = 4 << 20;
  AllReduceAlgorithm algorithm = AllReduceAlgorithm::kAuto;
};

struct BspTraining {
  const Node* train = nullptr;  // One synchronous step of every replica.
  const Node* sync = nullptr;   // Replica 0's own variables copied to the others.
  Output mean_loss;             // The replicas' mean loss.
  std::vector<Replica> replicas;
  std::vector<std::vector<int>> buckets;  // Of the all-reduced gradients, in production order.
};

absl::StatusOr<BspTraining> BuildBsp(const Scope& scope, const std::vector<std::string>& devices,
                                     const ReplicaModelFn& model, Optimizer* optimizer,
                                     const BspOptions& options = {});

// What the local-step strategies build. Variables of every replica must be its own.
struct LocalTraining {
  const Node* train = nullptr;        // One local step of every replica; increments the count.
  const Node* communicate = nullptr;  // The strategy's exchange (see each Build*).
  Output count;                       // local_steps after this run's train (fetch with train).
  Output local_steps;                 // The checkpointed step count (int64, on devices[0]).
  Output mean_loss;                   // The replicas' mean loss (ADMM: of f_i alone).
  std::vector<Replica> replicas;
  // ElasticAveraging: each replica's center copies; Admm: each replica's z and u copies.
  std::vector<std::vector<Output>> centers, duals;
  Output primal_residual;  // Admm: sum_i ||x_i - z||^2, with the z `communicate` computes.
};

// communicate: x_i <- (1/N) sum_j x_j for every variable (an all-reduce, then assigns).
absl::StatusOr<LocalTraining> BuildModelAveraging(const Scope& scope,
                                                  const std::vector<std::string>& devices,
                                                  const ReplicaModelFn& model,
                                                  Optimizer* optimizer);
// communicate: the elastic step, every term before it: x_i <- x_i - eta*g_i(x_i) - alpha*(x_i -
// c), c <- c + alpha * sum_i (x_i - c); each replica keeps a copy of the center c.
absl::StatusOr<LocalTraining> BuildElasticAveraging(const Scope& scope,
                                                    const std::vector<std::string>& devices,
                                                    const ReplicaModelFn& model,
                                                    GradientDescentOptimizer* optimizer,
                                                    double moving_rate);
// train: one step of `optimizer` on f_i + (rho/2) * ||x_i - z + u_i||^2 (run it k times);
// communicate: z <- mean_i(x_i + u_i) (an all-reduce), u_i <- u_i + x_i - z.
absl::StatusOr<LocalTraining> BuildAdmm(const Scope& scope, const std::vector<std::string>& devices,
                                        const ReplicaModelFn& model, Optimizer* optimizer,
                                        double rho);

}  // namespace ops
}  // namespace sluice

#endif  // SLUICE_OPS_STRATEGIES_H_
