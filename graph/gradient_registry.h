// GradientRegistry: the gradient function of each differentiable op, by op name. A gradient
// function adds the nodes that compute the gradients of an op's inputs from the gradients of its
// outputs; ops/gradients.h chains them into a backward graph (AddGradients). Op families
// register their gradient functions beside their ops (ops/*_grad.cc), from RegisterAllOps.
//
// Contract of a GradFn, called once per forward node on the backward path:
//   - `op` is the forward node; its inputs are Output(op.input(i).node, op.input(i).index) and
//     its outputs Output(&op, i).
//   - grad_outputs[i] is the gradient of the objective with respect to output i, or an invalid
//     Output when no gradient reaches that output (only for ops with several outputs; at least
//     one is valid).
//   - The function fills grad_inputs with one entry per input of `op`: the gradient with respect
//     to that input, or an invalid Output when the input gets no gradient (integer inputs such
//     as axes or shapes). Nodes are added through `scope` (already named "<node>_grad" and placed
//     on the forward node's device); an error may be returned or recorded in the scope.
// Ops registered with RegisterNoGradient pass no gradient to their inputs (StopGradient,
// Variable, random ops, ...): their inputs count as not depending on the objective through them.
//
// Thread-safety: filled once at start-up, then only read; Register and LookUp lock all the same.
//
//   registry->Register("Exp", [](const Scope& s, const Node& op, const std::vector<Output>& dy,
//                                std::vector<Output>* dx) {
//     *dx = {ops::Mul(s, dy[0], Output(&op, 0))};
//     return absl::OkStatus();
//   });
#ifndef SLUICE_GRAPH_GRADIENT_REGISTRY_H_
#define SLUICE_GRAPH_GRADIENT_REGISTRY_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "graph/graph.h"
#include "graph/scope.h"

namespace sluice {

using GradFn = std::function<absl::Status(const Scope& scope, const Node& op,
                                          const std::vector<Output>& grad_outputs,
                                          std::vector<Output>* grad_inputs)>;

class GradientRegistry {
 public:
  // The process-wide registry that ops/register.h fills.
  static GradientRegistry* Global();

  // AlreadyExists when `op` already has a gradient function or a NoGradient marker.
  absl::Status Register(absl::string_view op, GradFn fn);
  absl::Status RegisterNoGradient(absl::string_view op);

  // The gradient function of `op`; nullptr when the op is registered as NoGradient; NotFound
  // "no gradient is registered for op 'Foo'" when it is neither.
  absl::StatusOr<const GradFn*> LookUp(absl::string_view op) const;
  // True when `op` has a gradient function or a NoGradient marker.
  bool IsRegistered(absl::string_view op) const;

 private:
  mutable absl::Mutex mu_;
  // A null GradFn marks NoGradient. Values never move once inserted (std::map), so pointers
  // handed out by LookUp stay valid.
  std::map<std::string, GradFn, std::less<>> fns_ ABSL_GUARDED_BY(mu_);
};

// The input `i` and output `i` of a forward node as DSL handles (for gradient functions).
inline Output OpInput(const Node& op, int i) { return Output(op.input(i).node, op.input(i).index); }
inline Output OpOutput(const Node& op, int i) { return Output(&op, i); }

}  // namespace sluice

#endif  // SLUICE_GRAPH_GRADIENT_REGISTRY_H_
