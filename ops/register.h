// Registers every op family's definitions and CPU kernels into OpRegistry::Global() and
// KernelRegistry::Global(). This is the one place registration happens (no static
// initialisers); it is idempotent and thread-safe, and DSL op functions and Session::Create
// call it, so users rarely need to.
#ifndef SLUICE_OPS_REGISTER_H_
#define SLUICE_OPS_REGISTER_H_

namespace sluice {

void RegisterAllOps();

}  // namespace sluice

#endif  // SLUICE_OPS_REGISTER_H_
