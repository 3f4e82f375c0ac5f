// What a parameter server keeps per variable beside its value (ops/ps_ops.h): clocks, each
// worker's pull clock, DC-ASGD's backups, the synchronous aggregation's sum, the delay
// histogram, and the pulls waiting for slower workers. Shared by the pull and push kernels
// (ps_ops.cc) and the ops that save and restore it (ps_state_ops.cc). Internal to ops/.
//
// The state belongs to one initialisation of its variable: when the variable's initializer
// runs again or a checkpoint restores it (Variable::initializations changes), the next ps op
// starts the state over (StartOverIfReinitialized), so clocks and backups never outlive the
// values they describe.
//
// Thread-safety: every field is guarded by `mu`; lock order is the variable's mu, then this mu.
#ifndef SLUICE_OPS_PS_STATE_H_
#define SLUICE_OPS_PS_STATE_H_

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/tensor.h"
#include "graph/op_def.h"
#include "ops/state_ops.h"
#include "runtime/kernel/cancellation.h"
#include "runtime/kernel/kernel.h"
#include "runtime/kernel/resource_mgr.h"

namespace sluice {
namespace ps_internal {

// A pull waiting for the slowest worker (bounded staleness).
struct PullWaiter {
  int64_t worker = 0;
  int64_t need = 0;  // The slowest worker's clock this pull may read at.
  int64_t workers = 0;
  bool backup = false;  // Keep the value as the worker's DC-ASGD backup.
  bool sync = false;    // Synchronous aggregation: wait for the version it pushed to.
  OpKernelContext* ctx = nullptr;
  std::function<void()> done;
  CancellationManager* cm = nullptr;
  std::optional<CancellationManager::Token> token;
};

// A DC-ASGD worker's backup of the rows it last pulled (row pulls): the row numbers and their
// values then, one row after another.
struct RowBackup {
  std::vector<int64_t> rows;
  Tensor values;
};

struct PsState : Resource {
  absl::Mutex mu;
  // The variable's Variable::initializations this state describes.
  int64_t initialization ABSL_GUARDED_BY(mu) = 0;
  std::map<int64_t, int64_t> worker_clock ABSL_GUARDED_BY(mu);  // Worker -> its pushes.
  std::list<std::shared_ptr<PullWaiter>> waiting ABSL_GUARDED_BY(mu);
  std::string rule ABSL_GUARDED_BY(mu);  // The first push's; "" before any push.
  int64_t clock ABSL_GUARDED_BY(mu) = 0;
  std::map<int64_t, int64_t> pull_clock ABSL_GUARDED_BY(mu);    // Worker -> t at its last pull.
  std::map<int64_t, Tensor> backup ABSL_GUARDED_BY(mu);         // DC-ASGD: worker -> w_bak.
  std::map<int64_t, RowBackup> row_backup ABSL_GUARDED_BY(mu);  // The same for row pulls.
  Tensor mean_square ABSL_GUARDED_BY(mu);                       // DC-ASGD-a's MS.
  std::map<int64_t, int64_t> delays ABSL_GUARDED_BY(mu);        // tau -> pushes.
  const void* hogwild_buffer ABSL_GUARDED_BY(mu) = nullptr;     // The buffer Hogwild owns.
  // Synchronous aggregation: the version (aggregated updates applied), the gradients summed for
  // it so far, the version each worker last pulled and last contributed to, and the pushes
  // dropped as stale.
  int64_t version ABSL_GUARDED_BY(mu) = 0;
  Tensor accum ABSL_GUARDED_BY(mu);
  int64_t accum_count ABSL_GUARDED_BY(mu) = 0;
  std::map<int64_t, int64_t> pulled_version ABSL_GUARDED_BY(mu);
  std::map<int64_t, int64_t> pushed_version ABSL_GUARDED_BY(mu);
  int64_t dropped ABSL_GUARDED_BY(mu) = 0;
};

// The ps state of variable `name` on this device, created empty on first use.
absl::StatusOr<std::shared_ptr<PsState>> StateOf(OpKernelContext* ctx, const std::string& name);

// Clears everything but the waiting pulls when `var` was initialised again since the state was
// made, and records the initialisation it now describes.
void StartOverIfReinitialized(const Variable& var, PsState* s)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(var.mu, s->mu);
// Clears everything but the waiting pulls, whatever the initialisation (a state being replaced).
void StartOver(const Variable& var, PsState* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(var.mu, s->mu);

// Base of the kernels: the variable (by its write handle's name) and its state.
class PsKernel : public OpKernel {
 public:
  explicit PsKernel(const Node& node)
      : OpKernel(node), name_(VariableNameOf(*node.input(0).node)) {}

 protected:
  absl::Status Lookup(OpKernelContext* ctx, std::shared_ptr<Variable>* var,
                      std::shared_ptr<PsState>* state) const {
    ctx->release_input(0);  // Input 0 only names the variable.
    *var = ctx->resources()->LookupVariable(name_);
    if (*var == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("variable '", name_, "' is not initialized"));
    }
    SLUICE_ASSIGN_OR_RETURN(*state, StateOf(ctx, name_));
    return absl::OkStatus();
  }
  // The state, started over first if the variable was initialised again (readers of the state
  // alone: the variable need not be initialised).
  absl::StatusOr<std::shared_ptr<PsState>> LockedState(OpKernelContext* ctx) const {
    ctx->release_input(0);
    SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<PsState> state, StateOf(ctx, name_));
    if (std::shared_ptr<Variable> var = ctx->resources()->LookupVariable(name_)) {
      Variable& v = *var;
      absl::MutexLock lock(&v.mu);
      absl::MutexLock state_lock(&state->mu);
      StartOverIfReinitialized(v, state.get());
    }
    return state;
  }
  static absl::Status CheckInitialized(const std::string& name, const Variable& v)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(v.mu) {
    if (!v.initialized) {
      return absl::FailedPreconditionError(
          absl::StrCat("variable '", name, "' is not initialized"));
    }
    return absl::OkStatus();
  }

  const std::string name_;
};

// Registers PsPullRows and PsPushRows (ps_rows_ops.cc); RegisterPsOps calls it.
absl::Status RegisterPsRowOps(OpRegistry* ops, KernelRegistry* kernels);

// Registers PsExportState and PsImportState (ps_state_ops.cc); RegisterPsOps calls it.
absl::Status RegisterPsStateOps(OpRegistry* ops, KernelRegistry* kernels);

}  // namespace ps_internal
}  // namespace sluice

#endif  // SLUICE_OPS_PS_STATE_H_
