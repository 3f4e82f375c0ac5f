// State ops: variables, whose values live in the device's ResourceMgr and persist across the
// steps of a session.
//   Variable   reads the variable's current value ("dtype", "shape", "shared_name": the
//              variable's name, default the node's name); fails with FailedPrecondition
//              "variable 'w1' is not initialized" before the first Assign
//   Assign     sets the value ("validate_shape", default true: the value must match "shape")
//   AssignAdd, AssignSub  update the value in place by an equally shaped delta
//   ScatterAdd, ScatterSub, ScatterUpdate  update rows of the value (dimension 0) by index
// The Assign-family ops take the variable as input 0 ("ref: Ref(T)"), which must come from a
// Variable node; they use only its name, never its value. A Variable node whose every consumer is
// such a "ref" input is a write handle: it never reads the variable (so it works before the first
// Assign) and outputs an empty tensor. ops::Assign/AssignAdd/AssignSub create a handle beside
// the variable (named "<variable>_ref/Variable"), so the variable's own node stays a plain
// reader that any op may consume.
//
// Updates follow the copy-on-write contract of runtime/kernel/resource_mgr.h: a value that a reader
// still holds (a fetched tensor, an output in flight) is never modified; the update then goes to
// a new buffer. Reads and updates of one variable are serialised by Variable::mu, but ops in one
// step that are not ordered by edges may see the variable before or after an update.
//
//   Output w = ops::Variable(s.WithOpName("w"), TensorShape({2}), DType::kFloat32);
//   Output init = ops::Assign(s, w, Tensor::FromVector<float>({1, 2}));
//   Output step = ops::AssignAdd(s, w, Tensor::FromVector<float>({1, 1}));
#ifndef SLUICE_OPS_STATE_OPS_H_
#define SLUICE_OPS_STATE_OPS_H_

#include <memory>
#include <string>

#include "graph/op_def.h"
#include "graph/scope.h"
#include "runtime/kernel/kernel.h"

namespace sluice {

absl::Status RegisterStateOps(OpRegistry* ops, KernelRegistry* kernels);

// The ResourceMgr name of the variable a Variable node stands for: its "shared_name", else its
// node name.
std::string VariableNameOf(const Node& variable_node);

// OK when input 0 of `node` comes from a Variable node, as a "ref" input must (the Assign
// family, the parameter-server ops); else InvalidArgument naming both nodes.
absl::Status CheckRefInput(const Node& node);

// Kernel factory for ops whose input 0 is a variable ref (checked by CheckRefInput).
template <typename K>
absl::StatusOr<std::unique_ptr<OpKernel>> MakeVariableUpdateKernel(const Node& node) {
  absl::Status ref = CheckRefInput(node);
  if (!ref.ok()) return ref;
  return std::unique_ptr<OpKernel>(new K(node));
}

namespace ops {

Output Variable(const Scope& scope, TensorShape shape, DType dtype,
                SourceLocation loc = SourceLocation::Current());
// `var` is the output of a Variable node; the returned output is the variable's new value.
Output Assign(const Scope& scope, Output var, Input value,
              SourceLocation loc = SourceLocation::Current());
Output AssignAdd(const Scope& scope, Output var, Input value,
                 SourceLocation loc = SourceLocation::Current());
Output AssignSub(const Scope& scope, Output var, Input value,
                 SourceLocation loc = SourceLocation::Current());
// Row updates: rows indices[i] of the variable get updates[i, ...] added, subtracted or set.
Output ScatterAdd(const Scope& scope, Output var, Input indices, Input updates,
                  SourceLocation loc = SourceLocation::Current());
Output ScatterSub(const Scope& scope, Output var, Input indices, Input updates,
                  SourceLocation loc = SourceLocation::Current());
Output ScatterUpdate(const Scope& scope, Output var, Input indices, Input updates,
                     SourceLocation loc = SourceLocation::Current());
// A write handle for the variable behind `var` (a Variable node's output): the node that
// Assign-family ops and other ref inputs take instead of the reader.
Output VariableRef(const Scope& scope, Output var, SourceLocation loc = SourceLocation::Current());

}  // namespace ops
}  // namespace sluice

#endif  // SLUICE_OPS_STATE_OPS_H_
