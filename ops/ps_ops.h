// Parameter-server ops: a variable on a ps task that workers pull and push without waiting for
// each other, updated by the asynchronous rules of TRAINING.md section 3. Per variable the ps
// keeps a clock t (pushes applied), each worker's clock at its last pull, what a rule needs
// (DC-ASGD's per-worker backups, DC-ASGD-a's mean square) and a histogram of push delays; the
// delay of a push from worker m is tau = t - (t at m's last pull), as wormhole measures it.
//   PsPull   (ref var)       -> its value, and how many pushes worker m is ahead of the
//                               slowest worker (its "lead"); records m's pull (and DC-ASGD's
//                               backup). With staleness s >= 0 and `workers` N, bounded
//                               staleness (SSP, Ho et al. 2013): worker m, having pushed c_m
//                               times, may read only when the slowest of workers 0..N-1 has
//                               pushed at least c_m - s times; the pull waits (without a
//                               thread) until pushes let it through, or the step is cancelled.
//                               s = 0 is BSP-like lockstep, s < 0 (default) ASGD.
//   PsPullRows(ref var, indices) -> rows `indices` (a copy), recording m's pull (and, for the
//                               DC-ASGD rules, the rows as m's backup)
//   PsPushRows(ref var, indices, values) -> delay; the rule applied to rows `indices` only
//                               (asgd, hogwild, adadelay, dc_asgd, dc_asgd_a; ps_rows_ops.cc):
//                               for embeddings, only the rows a batch touches cross the
//                               network and are written
//   PsCounters(ref var)      -> [pushes received, versions applied, pushes dropped, waiting,
//                               bytes held by DC-ASGD's per-worker backups]
//   PsPush   (ref var, grad) -> the push's delay tau (int64); applies grad by the rule
//   PsDelays (ref var)       -> int64 [max tau + 1]: how many pushes had each delay
// Attributes: worker (m, >= 0), rule, learning_rate (eta), lambda, momentum (mu), epsilon,
// beta. Rules, g the pushed gradient, w the variable:
//   "asgd"       w <- w - eta * g, the whole variable under its lock
//   "hogwild"    the same element by element without the variable's lock (Niu et al. 2011):
//                concurrent pushes interleave, and a reader holding a pulled value may see a
//                push half applied; only this rule writes into a value readers hold
//   "dc_asgd"    w <- w - eta * (g + lambda * g * g * (w - w_bak(m))), w_bak(m) the value
//                worker m last pulled (one backup per worker; Zheng et al. 2017, DC-ASGD-c)
//   "dc_asgd_a"  the same with lambda_t = lambda / sqrt(MS_t + epsilon) element-wise,
//                MS_t = mu * MS_{t-1} + (1 - mu) * g * g, MS_0 = 0 (DC-ASGD-a)
//   "adadelay"   w <- w - eta / (beta + sqrt(t + tau)) * g, t the clock before this push
//                (the step size of wormhole's delay-tolerant SGD, an AdaDelay form)
//   "sync"       synchronous aggregation (TF's SyncReplicasOptimizer): a gradient computed on
//                the current version (the worker's first for it) joins the sum; the
//                `replicas`-th (R) applies w <- w - eta * sum / R and starts the next version;
//                any other (stale, or a second from one worker) is dropped and counted. A
//                worker's pull after its push waits for that version to be applied. With R
//                below the number of workers, the slowest are backups whose gradients drop.
// A push from a worker that never pulled counts its pull at clock 0 (and DC-ASGD uses the
// current value as its backup). All pushes of one variable must use one rule: a push with
// another rule than the variable's first is an error naming both.
//
//   Output w_local = ops::PsPull(s, w, {.worker = 1, .rule = "dc_asgd"});
//   ... loss from w_local, grad = its gradient ...
//   Output tau = ops::PsPush(s, w, grad, {.worker = 1, .rule = "dc_asgd", .learning_rate = 0.1,
//                                         .lambda = 0.04});
#ifndef SLUICE_OPS_PS_OPS_H_
#define SLUICE_OPS_PS_OPS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "graph/op_def.h"
#include "graph/scope.h"
#include "runtime/kernel/kernel.h"
#include "runtime/kernel/resource_mgr.h"

namespace sluice {

absl::Status RegisterPsOps(OpRegistry* ops, KernelRegistry* kernels);

// What the parameter-server state of each variable on a device says, for metrics: pushes
// received (the clock), versions applied and pushes dropped ("sync"), pulls waiting, and bytes
// of DC-ASGD backups.
struct PsFigures {
  std::string variable;
  int64_t pushes = 0, versions = 0, dropped = 0, waiting = 0, backup_bytes = 0;
};
std::vector<PsFigures> ReadPsFigures(const ResourceMgr& resources);

// A pull waiting now, for hang reports: the variable, the pulling worker's index, and the
// workers whose pushes it waits for (bounded staleness: those behind the clock it may read
// at; empty for a synchronous-aggregation pull, which waits for the update itself).
struct PsWait {
  std::string variable;
  int64_t worker = 0;
  std::vector<int64_t> behind;
};
std::vector<PsWait> ReadPsWaits(const ResourceMgr& resources);

namespace ops {

struct PsRule {
  int64_t worker = 0;
  std::string rule = "asgd";
  int64_t staleness = -1;  // Pulls: bounded staleness over `workers` workers when >= 0.
  int64_t workers = 0;
  double learning_rate = 0.01;
  double lambda = 0.0;
  double momentum = 0.95;
  double epsilon = 1e-7;
  double beta = 1.0;
  int64_t replicas = 1;  // "sync": gradients aggregated per update.
};

// `var` is a Variable node's output (the ops take a write handle beside it, as Assign does).
Output PsPull(const Scope& scope, Output var, const PsRule& rule,
              SourceLocation loc = SourceLocation::Current());
Output PsPush(const Scope& scope, Output var, Input grad, const PsRule& rule,
              SourceLocation loc = SourceLocation::Current());
Output PsDelays(const Scope& scope, Output var, SourceLocation loc = SourceLocation::Current());

}  // namespace ops
}  // namespace sluice

#endif  // SLUICE_OPS_PS_OPS_H_
