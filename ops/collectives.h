// Collective operations over a group of devices, built into the graph when it is built (TF's
// collective ops are the model: the group and the order of every transfer are fixed then, so
// nothing is negotiated at run time). Each returns one output per member, on that member's
// device; the partitioner turns every edge between members into a Send/Recv pair, so the
// transfers go over the data plane under credits like any other edge, and a lost member fails
// the step like any other lost peer.
//
//   AllReduce      every member gets op(inputs) (sum, mean or max), by a ring: reduce-scatter
//                  then all-gather over n near-equal chunks of the flattened tensor, n-1 steps
//                  each, so each member sends 2(n-1)/n of the tensor's bytes (the bandwidth
//                  bound of TRAINING.md section 4)
//   ReduceScatter  member i gets chunk i of op(inputs) (flattened, n near-equal chunks)
//   AllGather      every member gets the inputs concatenated along dimension 0, in member order
//   Broadcast      every member gets the root member's input
// Inputs must have one fully defined shape (AllGather: equal beyond dimension 0) and a dtype the
// reduction supports; `devices` are the members' devices, one per input, distinct. Errors name
// the member and the shapes. Builders are used from one thread, like Scope.
//
//   SLUICE_ASSIGN_OR_RETURN(std::vector<Output> summed,
//       ops::AllReduce(s, {g0, g1}, {"/job:worker/task:0", "/job:worker/task:1"},
//                      ops::ReduceOp::kMean));
#ifndef SLUICE_OPS_COLLECTIVES_H_
#define SLUICE_OPS_COLLECTIVES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "graph/scope.h"

namespace sluice {
namespace ops {

enum class ReduceOp { kSum, kMean, kMax };

// "sum", "mean", "max".
absl::StatusOr<ReduceOp> ParseReduceOp(const std::string& name);

absl::StatusOr<std::vector<Output>> AllReduce(const Scope& scope, const std::vector<Output>& inputs,
                                              const std::vector<std::string>& devices, ReduceOp op);
absl::StatusOr<std::vector<Output>> ReduceScatter(const Scope& scope,
                                                  const std::vector<Output>& inputs,
                                                  const std::vector<std::string>& devices,
                                                  ReduceOp op);
absl::StatusOr<std::vector<Output>> AllGather(const Scope& scope, const std::vector<Output>& inputs,
                                              const std::vector<std::string>& devices);
absl::StatusOr<std::vector<Output>> Broadcast(const Scope& scope, const Output& value, int root,
                                              const std::vector<std::string>& devices);

}  // namespace ops
}  // namespace sluice

#endif  // SLUICE_OPS_COLLECTIVES_H_
