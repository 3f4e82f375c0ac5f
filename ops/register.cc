#include "ops/register.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "ops/array_ops.h"
#include "ops/base_ops.h"
#include "ops/math_ops.h"
#include "ops/nn_ops.h"
#include "ops/random_ops.h"
#include "ops/state_ops.h"

namespace sluice {

void RegisterAllOps() {
  static std::once_flag once;
  std::call_once(once, [] {
    OpRegistry* ops = OpRegistry::Global();
    KernelRegistry* kernels = KernelRegistry::Global();
    for (auto reg : {RegisterBaseOps, RegisterArrayOps, RegisterMathOps, RegisterNnOps,
                     RegisterStateOps, RegisterRandomOps}) {
      absl::Status s = reg(ops, kernels);
      if (!s.ok()) {
        // A registration error is a programming error in ops/: fail loudly at start-up.
        std::fprintf(stderr, "sluice: op registration failed: %s\n", s.ToString().c_str());
        std::abort();
      }
    }
  });
}

}  // namespace sluice
