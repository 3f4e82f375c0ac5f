// Shared plumbing for DSL op functions: add the node through the scope. Registration is not
// done here but by the entry points (ops::NewRootScope, Session, master, worker, the Python
// module). Every family's `ops::Foo(scope, ...)` is a one-liner on top of these.
#ifndef SLUICE_OPS_OP_BUILDER_H_
#define SLUICE_OPS_OP_BUILDER_H_

#include <vector>

#include "graph/scope.h"

namespace sluice {
namespace ops {

inline const Node* BuildNode(const Scope& scope, absl::string_view op,
                             const std::vector<Input>& inputs, AttrMap attrs, SourceLocation loc) {
  return scope.AddNode(op, inputs, std::move(attrs), loc);
}

inline Output BuildOp(const Scope& scope, absl::string_view op, const std::vector<Input>& inputs,
                      AttrMap attrs, SourceLocation loc) {
  return SingleOutput(BuildNode(scope, op, inputs, std::move(attrs), loc));
}

}  // namespace ops
}  // namespace sluice

#endif  // SLUICE_OPS_OP_BUILDER_H_
