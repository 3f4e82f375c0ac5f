// Shared plumbing for DSL op functions: make sure ops are registered, then add the node through
// the scope. Every family's `ops::Foo(scope, ...)` is a one-liner on top of these.
#ifndef SLUICE_OPS_OP_BUILDER_H_
#define SLUICE_OPS_OP_BUILDER_H_

#include <vector>

#include "graph/scope.h"
#include "ops/register.h"

namespace sluice {
namespace ops {

inline const Node* BuildNode(const Scope& scope, absl::string_view op,
                             const std::vector<Input>& inputs, AttrMap attrs,
                             SourceLocation loc) {
  RegisterAllOps();
  return scope.AddNode(op, inputs, std::move(attrs), loc);
}

inline Output BuildOp(const Scope& scope, absl::string_view op, const std::vector<Input>& inputs,
                      AttrMap attrs, SourceLocation loc) {
  return SingleOutput(BuildNode(scope, op, inputs, std::move(attrs), loc));
}

}  // namespace ops
}  // namespace sluice

#endif  // SLUICE_OPS_OP_BUILDER_H_
