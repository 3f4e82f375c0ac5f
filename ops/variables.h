// Variables with initial values, and the op that initialises them all.
//
// VariableWithInit creates a Variable node and its initializer: an Assign of the initial value
// named "<variable node>/Initializer" (with its own write handle "<variable node>/Initializer/
// ref"). That name is the registry: GlobalVariablesInitializer scans the graph for such Assign
// nodes (the graph itself is the one place that knows every variable built so far, whichever
// scope built it) and groups them behind one NoOp. Build it after everything that creates
// variables, optimizer slots included (ops/optimizers.h creates its slots this way), and run it
// once per session before training. Variables made with plain ops::Variable are not included.
//
// Initial values are ordinary outputs (or constants): the helpers below build the common ones.
// They run only when the initializer runs, so random ones draw from their op's seeded stream
// (ops/random_ops.h). Thread-compatible like Scope.
//
//   Output w = ops::VariableWithInit(s.WithOpName("w"), ops::GlorotUniform(s, {784, 256},
//                                                                           DType::kFloat32, 1));
//   Output b = ops::VariableWithInit(s.WithOpName("b"), ops::Zeros(s, {256}, DType::kFloat32));
//   const Node* init = ops::GlobalVariablesInitializer(s.WithOpName("init"));
//   SLUICE_RETURN_IF_ERROR(session->Run({}, {}, {"init"}, nullptr));
#ifndef SLUICE_OPS_VARIABLES_H_
#define SLUICE_OPS_VARIABLES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "graph/scope.h"

namespace sluice {
namespace ops {

// A variable (named like any node built with `scope`) with the dtype and static shape of
// `initial_value`; returns its reader, or an invalid Output on error.
Output VariableWithInit(const Scope& scope, Input initial_value,
                        SourceLocation loc = SourceLocation::Current());
// The same with the full node name `name` (no scope prefix applied); the variable's name in the
// ResourceMgr is `name` too. For slot variables named after the variable they belong to.
Output VariableWithInitNamed(const Scope& scope, const std::string& name, Input initial_value,
                             SourceLocation loc = SourceLocation::Current());

// The initializer (Assign node) of a variable built by VariableWithInit, or nullptr.
const Node* InitializerOf(const Scope& scope, const Output& var);
// Every initializer in the scope's graph so far, in node order.
std::vector<const Node*> AllInitializers(const Scope& scope);
// A NoOp (named like any node built with `scope`) that runs every initializer in the graph so
// far. Returns nullptr on error.
const Node* GlobalVariablesInitializer(const Scope& scope,
                                       SourceLocation loc = SourceLocation::Current());

// Initial values of a fully defined shape.
Output Zeros(const Scope& scope, const TensorShape& shape, DType dtype,
             SourceLocation loc = SourceLocation::Current());
Output Constant(const Scope& scope, const TensorShape& shape, DType dtype, double value,
                SourceLocation loc = SourceLocation::Current());
// Normal with mean 0 and standard deviation `stddev`.
Output RandomNormalInit(const Scope& scope, const TensorShape& shape, DType dtype, double stddev,
                        int64_t seed, SourceLocation loc = SourceLocation::Current());
// Glorot (Xavier) uniform: U(-l, l) with l = sqrt(6 / (fan_in + fan_out)), fan_in and fan_out
// the first and last dimensions (both the size for a vector).
Output GlorotUniform(const Scope& scope, const TensorShape& shape, DType dtype, int64_t seed,
                     SourceLocation loc = SourceLocation::Current());

}  // namespace ops
}  // namespace sluice

#endif  // SLUICE_OPS_VARIABLES_H_
