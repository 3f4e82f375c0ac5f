#include "ops/ps_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/status.h"
#include "graph/shape_inference.h"
#include "ops/kernel_util.h"
#include "ops/op_builder.h"
#include "ops/ps_state.h"
#include "ops/state_ops.h"
#include "runtime/kernel/cancellation.h"

namespace sluice {
namespace ps_internal {

// A variable's ps state is the resource "ps-state:<variable>".
constexpr char kStatePrefix[] = "ps-state:";

absl::StatusOr<std::shared_ptr<PsState>> StateOf(OpKernelContext* ctx, const std::string& name) {
  std::shared_ptr<PsState> state =
      ctx->resources()->LookupOrCreate<PsState>(absl::StrCat(kStatePrefix, name));
  if (state == nullptr) {
    return absl::InternalError(
        absl::StrCat("the resource '", kStatePrefix, name, "' has another type"));
  }
  return state;
}

// Every ps state in `resources`, with its variable's name.
std::vector<std::pair<std::string, std::shared_ptr<PsState>>> AllStates(
    const ResourceMgr& resources) {
  std::vector<std::pair<std::string, std::shared_ptr<PsState>>> out;
  for (const auto& [name, resource] : resources.ResourcesWithPrefix(kStatePrefix)) {
    if (auto state = std::dynamic_pointer_cast<PsState>(resource)) {
      out.emplace_back(name.substr(sizeof(kStatePrefix) - 1), std::move(state));
    }
  }
  return out;
}

void StartOverIfReinitialized(const Variable& var, PsState* s) {
  if (s->initialization != var.initializations) StartOver(var, s);
}

void StartOver(const Variable& var, PsState* s) {
  s->initialization = var.initializations;
  s->worker_clock.clear();
  s->rule.clear();
  s->clock = 0;
  s->pull_clock.clear();
  s->backup.clear();
  s->row_backup.clear();
  s->mean_square = Tensor();
  s->delays.clear();
  s->hogwild_buffer = nullptr;
  s->version = 0;
  s->accum = Tensor();
  s->accum_count = 0;
  s->pulled_version.clear();
  s->pushed_version.clear();
  s->dropped = 0;
}

}  // namespace ps_internal

namespace {

using ps_internal::PsKernel;
using ps_internal::PsState;
using ps_internal::PullWaiter;
using ps_internal::StartOverIfReinitialized;
using ps_internal::StateOf;

bool IsRule(const std::string& r) {
  return r == "asgd" || r == "hogwild" || r == "dc_asgd" || r == "dc_asgd_a" || r == "adadelay" ||
         r == "sync";
}

// Worker j's clock: its pushes so far.
int64_t ClockOf(const PsState& s, int64_t j) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) {
  auto it = s.worker_clock.find(j);
  return it == s.worker_clock.end() ? 0 : it->second;
}

// The clock of the slowest of workers [0, n).
int64_t Slowest(const PsState& s, int64_t n) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) {
  int64_t slowest = std::numeric_limits<int64_t>::max();
  for (int64_t j = 0; j < n; ++j) slowest = std::min(slowest, ClockOf(s, j));
  return n == 0 ? 0 : slowest;
}

// Whether waiter `w` may read now: bounded staleness, the slowest worker close enough;
// synchronous aggregation, the version it contributed to applied.
bool Allowed(const PsState& s, const PullWaiter& w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) {
  if (w.sync) {
    auto it = s.pushed_version.find(w.worker);
    return it == s.pushed_version.end() || it->second < s.version;
  }
  return w.workers == 0 || Slowest(s, w.workers) >= w.need;
}

// Hands worker `w`'s pull its value: records the pull clock (and backup, and version), sets
// outputs 0 (the value) and 1 (how far the worker is ahead of the slowest).
void Serve(const Variable& var, PsState* s, int64_t worker, int64_t workers, bool backup,
           OpKernelContext* ctx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(var.mu, s->mu) {
  s->pull_clock[worker] = s->clock;
  s->pulled_version[worker] = s->version;
  if (backup) s->backup[worker] = var.value;
  ctx->set_output(0, var.value);
  auto it = s->worker_clock.find(worker);
  const int64_t mine = it == s->worker_clock.end() ? 0 : it->second;
  ctx->set_output(1, Tensor::Scalar<int64_t>(workers > 0 ? mine - Slowest(*s, workers) : 0));
}

// The waiting pulls the slowest worker's clock now allows, served and taken off the list; the
// caller completes them (Complete) once it has released the locks.
std::vector<std::shared_ptr<PullWaiter>> ServeReady(const Variable& var, PsState* s)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(var.mu, s->mu) {
  std::vector<std::shared_ptr<PullWaiter>> ready;
  for (auto it = s->waiting.begin(); it != s->waiting.end();) {
    if (Allowed(*s, **it)) {
      Serve(var, s, (*it)->worker, (*it)->workers, (*it)->backup, (*it)->ctx);
      ready.push_back(*it);
      it = s->waiting.erase(it);
    } else {
      ++it;
    }
  }
  return ready;
}

void Complete(const std::vector<std::shared_ptr<PullWaiter>>& ready) {
  for (const auto& w : ready) {
    if (w->cm != nullptr && w->token) w->cm->DeregisterCallback(*w->token);
    w->done();
  }
}

// Pulls (see the header): asynchronous, because a bounded-staleness or synchronous pull may have
// to wait for other workers' pushes, and must not hold a thread meanwhile.
class PsPullOp : public AsyncOpKernel {
 public:
  explicit PsPullOp(const Node& node)
      : AsyncOpKernel(node),
        name_(VariableNameOf(*node.input(0).node)),
        worker_(Attr<int64_t>("worker")),
        rule_(Attr<std::string>("rule")),
        staleness_(Attr<int64_t>("staleness")),
        workers_(Attr<int64_t>("workers")) {}

  void ComputeAsync(OpKernelContext* ctx, std::function<void()> done) override {
    absl::Status s = Start(ctx, done);
    if (!s.ok()) {
      ctx->SetStatus(std::move(s));
      done();
    }
  }

 private:
  // Serves the pull now, or leaves it waiting (and returns OK); an error is the caller's to
  // report.
  absl::Status Start(OpKernelContext* ctx, const std::function<void()>& done) {
    if (staleness_ >= 0 && (worker_ >= workers_ || worker_ < 0)) {
      return absl::InvalidArgumentError(absl::StrCat("bounded staleness: worker ", worker_,
                                                     " is not one of the ", workers_, " workers"));
    }
    ctx->release_input(0);  // Input 0 only names the variable.
    std::shared_ptr<Variable> var = ctx->resources()->LookupVariable(name_);
    SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<PsState> state, StateOf(ctx, name_));
    if (var == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("variable '", name_, "' is not initialized"));
    }
    auto waiter = std::make_shared<PullWaiter>();
    waiter->worker = worker_;
    waiter->workers = staleness_ >= 0 ? workers_ : 0;
    waiter->backup = rule_ == "dc_asgd" || rule_ == "dc_asgd_a";
    waiter->sync = rule_ == "sync";
    waiter->ctx = ctx;
    waiter->done = done;
    {
      absl::MutexLock lock(&var->mu);
      if (!var->initialized) {
        return absl::FailedPreconditionError(
            absl::StrCat("variable '", name_, "' is not initialized"));
      }
      absl::MutexLock state_lock(&state->mu);
      StartOverIfReinitialized(*var, state.get());
      auto it = state->worker_clock.find(worker_);
      const int64_t mine = it == state->worker_clock.end() ? 0 : it->second;
      waiter->need = mine - staleness_;
      if (Allowed(*state, *waiter)) {
        Serve(*var, state.get(), worker_, waiter->workers, waiter->backup, ctx);
        waiter.reset();
      }
    }
    if (waiter == nullptr) {
      done();
      return absl::OkStatus();
    }
    // Waits for slower workers' pushes. A cancelled step takes the pull off the list: the
    // callback, or the check below when cancellation came before the pull was listed. Whoever
    // takes it off the list (under state->mu) completes it, exactly once.
    waiter->cm = ctx->cancellation();
    const std::string what =
        waiter->sync
            ? absl::StrCat("worker ", worker_, "'s pull of '", name_,
                           "' waited for the other replicas' gradients")
            : absl::StrCat("worker ", worker_, "'s pull of '", name_,
                           "' waited for the slowest worker to reach clock ", waiter->need);
    if (waiter->cm != nullptr) {
      std::weak_ptr<PsState> weak = state;
      waiter->token = waiter->cm->RegisterCallback([weak, waiter, what] {
        std::shared_ptr<PsState> s = weak.lock();
        if (s == nullptr || !TakeOff(s.get(), waiter)) return;
        waiter->ctx->SetStatus(absl::CancelledError(absl::StrCat(what, "; the step ended")));
        waiter->done();
      });
      if (!waiter->token) {
        return absl::CancelledError(absl::StrCat(what, "; the step was cancelled"));
      }
    }
    std::vector<std::shared_ptr<PullWaiter>> ready;
    bool cancelled = false;
    {
      absl::MutexLock lock(&var->mu);
      absl::MutexLock state_lock(&state->mu);
      state->waiting.push_back(waiter);
      ready = ServeReady(*var, state.get());  // A push may have come meanwhile.
      // Still listed, so not completed: the step (and its CancellationManager) is alive.
      const bool listed =
          std::find(state->waiting.begin(), state->waiting.end(), waiter) != state->waiting.end();
      if (listed && waiter->cm != nullptr && waiter->cm->IsCancelled()) {
        state->waiting.remove(waiter);
        cancelled = true;
      }
    }
    Complete(ready);
    if (cancelled) {
      waiter->cm->DeregisterCallback(*waiter->token);
      ctx->SetStatus(absl::CancelledError(absl::StrCat(what, "; the step was cancelled")));
      done();
    }
    return absl::OkStatus();
  }

  // Removes `w` from the waiting list; false when it was not there (served or cancelled).
  static bool TakeOff(PsState* s, const std::shared_ptr<PullWaiter>& w) {
    absl::MutexLock lock(&s->mu);
    auto it = std::find(s->waiting.begin(), s->waiting.end(), w);
    if (it == s->waiting.end()) return false;
    s->waiting.erase(it);
    return true;
  }

  const std::string name_;
  const int64_t worker_;
  const std::string rule_;
  const int64_t staleness_, workers_;
};

template <typename T>
class PsPushOp : public PsKernel {
 public:
  explicit PsPushOp(const Node& node)
      : PsKernel(node),
        worker_(Attr<int64_t>("worker")),
        rule_(Attr<std::string>("rule")),
        lr_(Attr<float>("learning_rate")),
        lambda_(Attr<float>("lambda")),
        momentum_(Attr<float>("momentum")),
        epsilon_(Attr<float>("epsilon")),
        beta_(Attr<float>("beta")),
        replicas_(Attr<int64_t>("replicas")) {}

  absl::Status Compute(OpKernelContext* ctx) override {
    if (!IsRule(rule_)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "rule '", rule_, "' is not one of asgd, hogwild, dc_asgd, dc_asgd_a, adadelay, sync"));
    }
    if (rule_ == "sync" && replicas_ < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("synchronous aggregation needs replicas >= 1, got ", replicas_));
    }
    std::shared_ptr<Variable> var;
    std::shared_ptr<PsState> state;
    SLUICE_RETURN_IF_ERROR(Lookup(ctx, &var, &state));
    const Tensor& grad = ctx->input(1);
    int64_t tau = 0;
    std::vector<std::shared_ptr<PullWaiter>> ready;
    if (rule_ == "hogwild") {
      SLUICE_ASSIGN_OR_RETURN(tau, PushHogwild(*var, state.get(), grad));
      absl::MutexLock lock(&var->mu);
      absl::MutexLock state_lock(&state->mu);
      ready = ServeReady(*var, state.get());
    } else {
      Variable& v = *var;
      absl::MutexLock lock(&v.mu);
      SLUICE_RETURN_IF_ERROR(CheckInitialized(name_, v));
      SLUICE_RETURN_IF_ERROR(CheckGrad(v.value, grad));
      absl::MutexLock state_lock(&state->mu);
      StartOverIfReinitialized(v, state.get());
      SLUICE_RETURN_IF_ERROR(CheckRule(state.get()));
      tau = RecordPush(state.get());
      if (rule_ == "sync") {
        Aggregate(state.get(), &v, grad);
      } else {
        Tensor target =
            v.value.RefCountIsOne() ? v.value : Tensor(v.value.dtype(), v.value.shape());
        Apply(state.get(), v.value, grad, tau, &target);
        v.value = std::move(target);
      }
      ready = ServeReady(v, state.get());
    }
    Complete(ready);  // Pulls this push let through (bounded staleness).
    ctx->set_output(0, Tensor::Scalar<int64_t>(tau));
    return absl::OkStatus();
  }

 private:
  absl::Status CheckGrad(const Tensor& w, const Tensor& grad) const {
    if (grad.dtype() != w.dtype() || grad.shape() != w.shape()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "push to variable '", name_, "' (", DTypeName(w.dtype()), " ", w.shape().DebugString(),
          ") of a gradient ", DTypeName(grad.dtype()), " ", grad.shape().DebugString()));
    }
    return absl::OkStatus();
  }

  absl::Status CheckRule(PsState* s) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu) {
    if (s->rule.empty()) s->rule = rule_;
    if (s->rule != rule_) {
      return absl::InvalidArgumentError(absl::StrCat("variable '", name_, "' is updated by rule '",
                                                     s->rule, "'; this push asks for '", rule_,
                                                     "' (one rule per variable)"));
    }
    return absl::OkStatus();
  }

  // Advances the clocks; returns this push's delay and records it.
  int64_t RecordPush(PsState* s) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu) {
    auto it = s->pull_clock.find(worker_);
    const int64_t tau = s->clock - (it == s->pull_clock.end() ? 0 : it->second);
    ++s->delays[tau];
    ++s->clock;
    ++s->worker_clock[worker_];
    return tau;
  }

  // target = w updated by grad (target may be w's own buffer). `tau` is this push's delay and
  // s->clock already counts it.
  void Apply(PsState* s, const Tensor& w, const Tensor& grad, int64_t tau, Tensor* target) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu) {
    const int64_t n = w.num_elements();
    const T* wv = w.data<T>();
    const T* g = grad.data<T>();
    T* out = target->data<T>();
    const T lr = static_cast<T>(lr_);
    if (rule_ == "asgd") {
      for (int64_t i = 0; i < n; ++i) out[i] = wv[i] - lr * g[i];
    } else if (rule_ == "adadelay") {
      const T t = static_cast<T>(s->clock - 1);  // The clock before this push.
      const T step = lr / (static_cast<T>(beta_) + std::sqrt(t + static_cast<T>(tau)));
      for (int64_t i = 0; i < n; ++i) out[i] = wv[i] - step * g[i];
    } else {  // DC-ASGD, constant or adaptive lambda.
      auto it = s->backup.find(worker_);
      const Tensor bak = it == s->backup.end() ? w : it->second;
      const T* b = bak.data<T>();
      const bool adaptive = rule_ == "dc_asgd_a";
      if (adaptive && s->mean_square.num_elements() != n) {
        s->mean_square = Tensor(w.dtype(), w.shape());
        std::memset(s->mean_square.raw_data(), 0, s->mean_square.TotalBytes());
      }
      T* ms = adaptive ? s->mean_square.data<T>() : nullptr;
      const T mu = static_cast<T>(momentum_), eps = static_cast<T>(epsilon_);
      const T lambda0 = static_cast<T>(lambda_);
      for (int64_t i = 0; i < n; ++i) {
        T lambda = lambda0;
        if (adaptive) {
          ms[i] = mu * ms[i] + (1 - mu) * g[i] * g[i];
          lambda = lambda0 / std::sqrt(ms[i] + eps);
        }
        out[i] = wv[i] - lr * (g[i] + lambda * g[i] * g[i] * (wv[i] - b[i]));
      }
    }
  }

  // Synchronous aggregation: a gradient computed on the current version (and the worker's
  // first for it) joins the sum; the R-th applies w <- w - eta * sum / R and starts the next
  // version. Any other is dropped and counted.
  void Aggregate(PsState* s, Variable* v, const Tensor& grad) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(v->mu, s->mu) {
    auto pulled = s->pulled_version.find(worker_);
    auto pushed = s->pushed_version.find(worker_);
    const bool current = pulled != s->pulled_version.end() && pulled->second == s->version;
    if (!current || (pushed != s->pushed_version.end() && pushed->second == s->version)) {
      ++s->dropped;
      return;
    }
    const int64_t n = grad.num_elements();
    if (s->accum_count == 0) {
      s->accum = Tensor(grad.dtype(), grad.shape());
      std::memset(s->accum.raw_data(), 0, s->accum.TotalBytes());
    }
    T* sum = s->accum.data<T>();
    const T* g = grad.data<T>();
    for (int64_t i = 0; i < n; ++i) sum[i] += g[i];
    s->pushed_version[worker_] = s->version;
    if (++s->accum_count < replicas_) return;
    Tensor target =
        v->value.RefCountIsOne() ? v->value : Tensor(v->value.dtype(), v->value.shape());
    const T* wv = v->value.data<T>();
    T* out = target.data<T>();
    const T scale = static_cast<T>(lr_) / static_cast<T>(replicas_);
    for (int64_t i = 0; i < n; ++i) out[i] = wv[i] - scale * sum[i];
    v->value = std::move(target);
    s->accum_count = 0;
    ++s->version;
  }

  // Hogwild: the clock under the state's lock, the arithmetic on the variable's buffer with no
  // lock at all. The first push moves the value into a buffer of the rule's own (the initial
  // value may share a constant's buffer, which must never change).
  absl::StatusOr<int64_t> PushHogwild(Variable& var, PsState* s, const Tensor& grad) const {
    Tensor w;
    int64_t tau;
    {
      absl::MutexLock lock(&var.mu);
      SLUICE_RETURN_IF_ERROR(CheckInitialized(name_, var));
      SLUICE_RETURN_IF_ERROR(CheckGrad(var.value, grad));
      absl::MutexLock state_lock(&s->mu);
      StartOverIfReinitialized(var, s);
      SLUICE_RETURN_IF_ERROR(CheckRule(s));
      if (var.value.raw_data() != s->hogwild_buffer) {
        Tensor own(var.value.dtype(), var.value.shape());
        std::memcpy(own.raw_data(), var.value.raw_data(), var.value.TotalBytes());
        var.value = own;
        s->hogwild_buffer = own.raw_data();
      }
      tau = RecordPush(s);
      w = var.value;
    }
    T* wv = w.data<T>();
    const T* g = grad.data<T>();
    const T lr = static_cast<T>(lr_);
    for (int64_t i = 0; i < w.num_elements(); ++i) wv[i] -= lr * g[i];
    return tau;
  }

  const int64_t worker_;
  const std::string rule_;
  const float lr_, lambda_, momentum_, epsilon_, beta_;
  const int64_t replicas_;
};

class PsDelaysOp : public PsKernel {
 public:
  using PsKernel::PsKernel;
  bool IsExpensive() const override { return false; }

  absl::Status Compute(OpKernelContext* ctx) override {
    SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<PsState> state, LockedState(ctx));
    absl::MutexLock lock(&state->mu);
    const int64_t size = state->delays.empty() ? 0 : state->delays.rbegin()->first + 1;
    Tensor counts(DType::kInt64, TensorShape({size}));
    for (int64_t i = 0; i < size; ++i) counts.data<int64_t>()[i] = 0;
    for (const auto& [tau, n] : state->delays) counts.data<int64_t>()[tau] = n;
    ctx->set_output(0, counts);
    return absl::OkStatus();
  }
};

class PsCountersOp : public PsKernel {
 public:
  using PsKernel::PsKernel;
  bool IsExpensive() const override { return false; }

  absl::Status Compute(OpKernelContext* ctx) override {
    SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<PsState> state, LockedState(ctx));
    absl::MutexLock lock(&state->mu);
    int64_t backup_bytes = 0;  // DC-ASGD's memory cost: one copy of the variable per worker.
    for (const auto& [worker, b] : state->backup) backup_bytes += b.TotalBytes();
    for (const auto& [worker, b] : state->row_backup) backup_bytes += b.values.TotalBytes();
    ctx->set_output(0, Tensor::FromVector<int64_t>({state->clock, state->version, state->dropped,
                                                    static_cast<int64_t>(state->waiting.size()),
                                                    backup_bytes}));
    return absl::OkStatus();
  }
};

}  // namespace

std::vector<PsFigures> ReadPsFigures(const ResourceMgr& resources) {
  std::vector<PsFigures> out;
  for (const auto& [variable, state] : ps_internal::AllStates(resources)) {
    PsFigures f;
    f.variable = variable;
    absl::MutexLock lock(&state->mu);
    f.pushes = state->clock;
    f.versions = state->version;
    f.dropped = state->dropped;
    f.waiting = static_cast<int64_t>(state->waiting.size());
    for (const auto& [worker, b] : state->backup) f.backup_bytes += b.TotalBytes();
    for (const auto& [worker, b] : state->row_backup) f.backup_bytes += b.values.TotalBytes();
    out.push_back(std::move(f));
  }
  return out;
}

std::vector<PsWait> ReadPsWaits(const ResourceMgr& resources) {
  std::vector<PsWait> out;
  for (const auto& [variable, state] : ps_internal::AllStates(resources)) {
    absl::MutexLock lock(&state->mu);
    for (const std::shared_ptr<PullWaiter>& w : state->waiting) {
      PsWait wait{variable, w->worker, {}};
      for (int64_t j = 0; j < w->workers && !w->sync; ++j) {
        if (ClockOf(*state, j) < w->need) wait.behind.push_back(j);
      }
      out.push_back(std::move(wait));
    }
  }
  return out;
}

absl::Status RegisterPsOps(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(ps_internal::RegisterPsStateOps(ops, kernels));
  SLUICE_RETURN_IF_ERROR(ps_internal::RegisterPsRowOps(ops, kernels));
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("PsPull")
          .Input("ref: Ref(T)")
          .Output("value: T")
          .Output("lead: int64")
          .Attr("T: type")
          .Attr("worker: int = 0")
          .Attr("rule: string = \"asgd\"")
          .Attr("staleness: int = -1")
          .Attr("workers: int = 0")
          .SetIsStateful()
          .Doc("The variable's value for `worker`, recording its pull clock; with staleness >= "
               "0, waits until the slowest of `workers` is at most that far behind "
               "(ops/ps_ops.h).")
          .SetShapeFn([](InferenceContext* c) {
            c->set_output(0, c->input_shape(0));
            c->set_output(1, TensorShape());
            return absl::OkStatus();
          })));
  SLUICE_RETURN_IF_ERROR(
      ops->Register(OpDefBuilder("PsCounters")
                        .Input("ref: Ref(T)")
                        .Output("counters: int64")
                        .Attr("T: type")
                        .SetIsStateful()
                        .Doc("[pushes received, versions applied (sync), pushes dropped as "
                             "stale (sync), pulls waiting, bytes of DC-ASGD backups]")
                        .SetShapeFn([](InferenceContext* c) {
                          c->set_output(0, TensorShape({5}));
                          return absl::OkStatus();
                        })));
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("PsPush")
          .Input("ref: Ref(T)")
          .Input("grad: T")
          .Output("delay: int64")
          .Attr("T: type")
          .Attr("worker: int = 0")
          .Attr("rule: string = \"asgd\"")
          .Attr("learning_rate: float = 0.01")
          .Attr("lambda: float = 0")
          .Attr("momentum: float = 0.95")
          .Attr("epsilon: float = 1e-7")
          .Attr("beta: float = 1")
          .Attr("replicas: int = 1")
          .SetIsStateful()
          .Doc("Applies `grad` from `worker` to the variable by `rule`; returns the push's delay "
               "(ops/ps_ops.h).")
          .SetShapeFn([](InferenceContext* c) {
            c->set_output(0, TensorShape());
            return absl::OkStatus();
          })));
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("PsDelays")
          .Input("ref: Ref(T)")
          .Output("counts: int64")
          .Attr("T: type")
          .SetIsStateful()
          .Doc("How many pushes to the variable had each delay 0, 1, ... (ops/ps_ops.h).")
          .SetShapeFn([](InferenceContext* c) {
            c->set_output(0, TensorShape({kUnknownDim}));
            return absl::OkStatus();
          })));
  for (DType dt : {DType::kFloat32, DType::kFloat64}) {
    SLUICE_RETURN_IF_ERROR(
        kernels->Register("PsPull", kDeviceCpu, dt, MakeVariableUpdateKernel<PsPullOp>));
    SLUICE_RETURN_IF_ERROR(
        kernels->Register("PsDelays", kDeviceCpu, dt, MakeVariableUpdateKernel<PsDelaysOp>));
    SLUICE_RETURN_IF_ERROR(
        kernels->Register("PsCounters", kDeviceCpu, dt, MakeVariableUpdateKernel<PsCountersOp>));
  }
  SLUICE_RETURN_IF_ERROR(kernels->Register("PsPush", kDeviceCpu, DType::kFloat32,
                                           MakeVariableUpdateKernel<PsPushOp<float>>));
  return kernels->Register("PsPush", kDeviceCpu, DType::kFloat64,
                           MakeVariableUpdateKernel<PsPushOp<double>>);
}

namespace ops {
namespace {

AttrMap RuleAttrs(const PsRule& r, bool push) {
  AttrMap attrs = {{"worker", AttrValue(r.worker)}, {"rule", AttrValue(r.rule)}};
  if (!push) {
    attrs.emplace("staleness", AttrValue(r.staleness));
    attrs.emplace("workers", AttrValue(r.workers));
  } else {
    attrs.emplace("learning_rate", AttrValue(static_cast<float>(r.learning_rate)));
    attrs.emplace("lambda", AttrValue(static_cast<float>(r.lambda)));
    attrs.emplace("momentum", AttrValue(static_cast<float>(r.momentum)));
    attrs.emplace("epsilon", AttrValue(static_cast<float>(r.epsilon)));
    attrs.emplace("beta", AttrValue(static_cast<float>(r.beta)));
    attrs.emplace("replicas", AttrValue(r.replicas));
  }
  return attrs;
}

}  // namespace

Output PsPull(const Scope& scope, Output var, const PsRule& rule, SourceLocation loc) {
  return BuildOp(scope, "PsPull", {VariableRef(scope, var, loc)}, RuleAttrs(rule, false), loc);
}

Output PsPush(const Scope& scope, Output var, Input grad, const PsRule& rule, SourceLocation loc) {
  return BuildOp(scope, "PsPush", {VariableRef(scope, var, loc), grad}, RuleAttrs(rule, true), loc);
}

Output PsDelays(const Scope& scope, Output var, SourceLocation loc) {
  return BuildOp(scope, "PsDelays", {VariableRef(scope, var, loc)}, {}, loc);
}

}  // namespace ops
}  // namespace sluice
