#include "ops/register.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "graph/gradient_registry.h"
#include "ops/array_ops.h"
#include "ops/base_ops.h"
#include "ops/data_ops.h"
#include "ops/grad_helper_ops.h"
#include "ops/gradient_fns.h"
#include "ops/math_ops.h"
#include "ops/nn_ops.h"
#include "ops/ps_ops.h"
#include "ops/random_ops.h"
#include "ops/sendrecv_ops.h"
#include "ops/state_ops.h"
#include "ops/training_ops.h"

namespace sluice {

void RegisterAllOps() {
  static std::once_flag once;
  std::call_once(once, [] {
    OpRegistry* ops = OpRegistry::Global();
    KernelRegistry* kernels = KernelRegistry::Global();
    for (auto reg : {RegisterBaseOps, RegisterArrayOps, RegisterMathOps, RegisterNnOps,
                     RegisterStateOps, RegisterRandomOps, RegisterSendRecvOps,
                     RegisterGradHelperOps, RegisterTrainingOps, RegisterDataOps, RegisterPsOps}) {
      absl::Status s = reg(ops, kernels);
      if (!s.ok()) {
        // A registration error is a programming error in ops/: fail loudly at start-up.
        std::fprintf(stderr, "sluice: op registration failed: %s\n", s.ToString().c_str());
        std::abort();
      }
    }
    GradientRegistry* grads = GradientRegistry::Global();
    for (auto reg : {RegisterArrayGradients, RegisterMathGradients, RegisterNnGradients}) {
      absl::Status s = reg(grads);
      if (!s.ok()) {
        std::fprintf(stderr, "sluice: gradient registration failed: %s\n", s.ToString().c_str());
        std::abort();
      }
    }
  });
}

namespace ops {
Scope NewRootScope() {
  RegisterAllOps();
  return Scope::NewRootScope();
}
}  // namespace ops

}  // namespace sluice
