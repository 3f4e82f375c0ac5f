// Registers every op family's definitions, CPU kernels and gradients into OpRegistry::Global(),
// KernelRegistry::Global() and GradientRegistry::Global(). This is the one place registration
// happens (no static initialisers); it is idempotent and thread-safe. The entry points call it:
// ops::NewRootScope (where a DSL graph starts), Session::Create, the master and worker, the
// Python module; DSL op functions do not.
//
//   Scope root = ops::NewRootScope();          // registers, then Scope::NewRootScope()
//   Output x = ops::Placeholder(root.WithOpName("x"), DType::kFloat32);
#ifndef SLUICE_OPS_REGISTER_H_
#define SLUICE_OPS_REGISTER_H_

#include "graph/scope.h"

namespace sluice {

void RegisterAllOps();

namespace ops {
// A root scope over the global op registry, with the op library registered.
Scope NewRootScope();
}  // namespace ops

}  // namespace sluice

#endif  // SLUICE_OPS_REGISTER_H_
