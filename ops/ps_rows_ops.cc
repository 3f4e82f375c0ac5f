// Row-wise pulls and pushes for embeddings (ops/ps_ops.h): only the rows a batch touches cross
// the network and are written. A push applies the variable's rule row by row, each index in
// order (a repeated index is updated once per occurrence), g the pushed row and w the row now:
//   "asgd"       w <- w - eta * g, under the variable's lock
//   "hogwild"    the same without the variable's lock (concurrent row pushes interleave; rows
//                of different pushes rarely collide, which is Hogwild's premise)
//   "adadelay"   w <- w - eta / (beta + sqrt(t + tau)) * g, t the clock before this push
//   "dc_asgd"    w <- w - eta * (g + lambda * g * g * (w - w_bak)), w_bak the row as this worker's
//                last row pull saw it (no compensation for a row that pull did not read)
//   "dc_asgd_a"  the same with lambda / sqrt(MS + epsilon), MS kept per element of the rows
// ("sync" aggregates whole variables and has no row form.)
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "graph/shape_inference.h"
#include "ops/kernel_util.h"
#include "ops/op_builder.h"
#include "ops/ps_state.h"
#include "ops/state_ops.h"

namespace sluice {
namespace {

using ps_internal::PsKernel;
using ps_internal::PsState;
using ps_internal::RowBackup;
using ps_internal::StartOverIfReinitialized;

bool IsRowRule(const std::string& r) {
  return r == "asgd" || r == "hogwild" || r == "adadelay" || r == "dc_asgd" || r == "dc_asgd_a";
}

absl::Status CheckRowRule(const std::string& rule) {
  if (IsRowRule(rule)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("rule '", rule,
                   "' has no row form (row pulls and pushes: asgd, hogwild, adadelay, dc_asgd, "
                   "dc_asgd_a)"));
}

// The rows `t` names, checked against the variable's `rows`.
absl::StatusOr<std::vector<int64_t>> RowIndices(const Tensor& t, int64_t rows,
                                                const std::string& name) {
  SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> idx, IndexValues(t, "indices"));
  for (size_t i = 0; i < idx.size(); ++i) {
    if (idx[i] < 0 || idx[i] >= rows) {
      return absl::InvalidArgumentError(absl::StrCat("indices[", i, "] = ", idx[i],
                                                     " is not a row of variable '", name, "' (",
                                                     rows, " rows)"));
    }
  }
  return idx;
}

absl::Status CheckHasRows(const std::string& name, const Variable& v)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(v.mu) {
  if (v.value.rank() < 1) {
    return absl::InvalidArgumentError(absl::StrCat("variable '", name, "' has no rows"));
  }
  return absl::OkStatus();
}

class PsPullRowsOp : public PsKernel {
 public:
  explicit PsPullRowsOp(const Node& node)
      : PsKernel(node), worker_(Attr<int64_t>("worker")), rule_(Attr<std::string>("rule")) {}

  absl::Status Compute(OpKernelContext* ctx) override {
    SLUICE_RETURN_IF_ERROR(CheckRowRule(rule_));
    std::shared_ptr<Variable> var;
    std::shared_ptr<PsState> state;
    SLUICE_RETURN_IF_ERROR(Lookup(ctx, &var, &state));
    Variable& v = *var;
    absl::MutexLock lock(&v.mu);
    SLUICE_RETURN_IF_ERROR(CheckInitialized(name_, v));
    SLUICE_RETURN_IF_ERROR(CheckHasRows(name_, v));
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> idx,
                            RowIndices(ctx->input(1), v.value.dim(0), name_));
    std::vector<int64_t> dims = v.value.shape().dims();
    dims[0] = static_cast<int64_t>(idx.size());
    Tensor rows(v.value.dtype(), TensorShape(dims));
    const size_t row_bytes = v.value.dim(0) == 0 ? 0 : v.value.TotalBytes() / v.value.dim(0);
    for (size_t i = 0; i < idx.size(); ++i) {
      std::memcpy(static_cast<char*>(rows.raw_data()) + i * row_bytes,
                  static_cast<const char*>(v.value.raw_data()) + idx[i] * row_bytes, row_bytes);
    }
    {
      absl::MutexLock state_lock(&state->mu);
      StartOverIfReinitialized(v, state.get());
      state->pull_clock[worker_] = state->clock;
      // The rows handed out are a copy nobody writes: the backup shares them.
      if (rule_ == "dc_asgd" || rule_ == "dc_asgd_a") state->row_backup[worker_] = {idx, rows};
    }
    ctx->set_output(0, std::move(rows));
    return absl::OkStatus();
  }

 private:
  const int64_t worker_;
  const std::string rule_;
};

template <typename T>
class PsPushRowsOp : public PsKernel {
 public:
  explicit PsPushRowsOp(const Node& node)
      : PsKernel(node),
        worker_(Attr<int64_t>("worker")),
        rule_(Attr<std::string>("rule")),
        lr_(static_cast<T>(Attr<float>("learning_rate"))),
        lambda_(static_cast<T>(Attr<float>("lambda"))),
        momentum_(static_cast<T>(Attr<float>("momentum"))),
        epsilon_(static_cast<T>(Attr<float>("epsilon"))),
        beta_(static_cast<T>(Attr<float>("beta"))) {}

  absl::Status Compute(OpKernelContext* ctx) override {
    SLUICE_RETURN_IF_ERROR(CheckRowRule(rule_));
    std::shared_ptr<Variable> var;
    std::shared_ptr<PsState> state;
    SLUICE_RETURN_IF_ERROR(Lookup(ctx, &var, &state));
    const Tensor& values = ctx->input(2);
    Variable& v = *var;
    int64_t tau = 0;
    std::vector<int64_t> idx;
    Tensor w;  // Hogwild: the buffer to write after the locks are released.
    {
      absl::MutexLock lock(&v.mu);
      SLUICE_RETURN_IF_ERROR(CheckInitialized(name_, v));
      SLUICE_RETURN_IF_ERROR(CheckHasRows(name_, v));
      SLUICE_ASSIGN_OR_RETURN(idx, RowIndices(ctx->input(1), v.value.dim(0), name_));
      const int64_t width = v.value.dim(0) == 0 ? 0 : v.value.num_elements() / v.value.dim(0);
      if (values.dtype() != v.value.dtype() ||
          values.num_elements() != static_cast<int64_t>(idx.size()) * width) {
        return absl::InvalidArgumentError(absl::StrCat(
            "push of ", idx.size(), " rows to variable '", name_, "' (", DTypeName(v.value.dtype()),
            " ", v.value.shape().DebugString(), ") with values ", DTypeName(values.dtype()), " ",
            values.shape().DebugString()));
      }
      PsState& s = *state;
      absl::MutexLock state_lock(&s.mu);
      StartOverIfReinitialized(v, &s);
      if (s.rule.empty()) s.rule = rule_;
      if (s.rule != rule_) {
        return absl::InvalidArgumentError(
            absl::StrCat("variable '", name_, "' is updated by rule '", s.rule,
                         "'; this row push asks for '", rule_, "' (one rule per variable)"));
      }
      auto it = s.pull_clock.find(worker_);
      tau = s.clock - (it == s.pull_clock.end() ? 0 : it->second);
      const int64_t t = s.clock;
      ++s.delays[tau];
      ++s.clock;
      ++s.worker_clock[worker_];
      if (rule_ == "hogwild") {
        // The first Hogwild push moves the value into a buffer of the rule's own (the initial
        // value may share a constant's buffer, which must never change).
        if (v.value.raw_data() != s.hogwild_buffer) {
          v.value = v.value.DeepCopy();
          s.hogwild_buffer = v.value.raw_data();
        }
        w = v.value;
      } else {
        // Copy-on-write only when a reader holds the whole value (row pulls copy their rows).
        if (!v.value.RefCountIsOne()) v.value = v.value.DeepCopy();
        ApplyLocked(&s, v.value.data<T>(), v.value.num_elements(), idx, values.data<T>(), width, t,
                    tau);
      }
    }
    if (w.IsInitialized() && w.num_elements() > 0) {  // Hogwild, without any lock.
      const int64_t width = w.num_elements() / w.dim(0);
      T* wv = w.data<T>();
      const T* g = values.data<T>();
      for (size_t i = 0; i < idx.size(); ++i) {
        for (int64_t e = 0; e < width; ++e) wv[idx[i] * width + e] -= lr_ * g[i * width + e];
      }
    }
    ctx->set_output(0, Tensor::Scalar<int64_t>(tau));
    return absl::OkStatus();
  }

 private:
  // Every rule but Hogwild, on the rows of `w` (n elements, width a row), under both locks.
  void ApplyLocked(PsState* s, T* w, int64_t n, const std::vector<int64_t>& idx, const T* g,
                   int64_t width, int64_t t, int64_t tau) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu) {
    if (rule_ == "asgd" || rule_ == "adadelay") {
      const T step = rule_ == "asgd" ? lr_ : lr_ / (beta_ + std::sqrt(static_cast<T>(t + tau)));
      for (size_t i = 0; i < idx.size(); ++i) {
        for (int64_t e = 0; e < width; ++e) w[idx[i] * width + e] -= step * g[i * width + e];
      }
      return;
    }
    // DC-ASGD: the worker's backup of each row, where its last row pull read it.
    std::unordered_map<int64_t, const T*> backup;
    auto b = s->row_backup.find(worker_);
    if (b != s->row_backup.end()) {
      const T* rows = b->second.values.template data<T>();
      for (size_t j = 0; j < b->second.rows.size(); ++j) {
        backup.emplace(b->second.rows[j], rows + j * width);
      }
    }
    const bool adaptive = rule_ == "dc_asgd_a";
    T* ms = nullptr;
    if (adaptive) {
      if (s->mean_square.num_elements() != n || !s->mean_square.IsInitialized()) {
        s->mean_square = Tensor(DTypeOf<T>::value, TensorShape({n}));
        std::memset(s->mean_square.raw_data(), 0, s->mean_square.TotalBytes());
      }
      ms = s->mean_square.template data<T>();
    }
    for (size_t i = 0; i < idx.size(); ++i) {
      T* row = w + idx[i] * width;
      auto found = backup.find(idx[i]);
      for (int64_t e = 0; e < width; ++e) {
        const T gi = g[i * width + e];
        T lambda = lambda_;
        if (adaptive) {
          T& m = ms[idx[i] * width + e];
          m = momentum_ * m + (1 - momentum_) * gi * gi;
          lambda = lambda_ / std::sqrt(m + epsilon_);
        }
        const T bak = found == backup.end() ? row[e] : found->second[e];
        row[e] -= lr_ * (gi + lambda * gi * gi * (row[e] - bak));
      }
    }
  }

  const int64_t worker_;
  const std::string rule_;
  const T lr_, lambda_, momentum_, epsilon_, beta_;
};

}  // namespace

namespace ps_internal {

absl::Status RegisterPsRowOps(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("PsPullRows")
          .Input("ref: Ref(T)")
          .Input("indices: Tindices")
          .Output("rows: T")
          .Attr("T: type")
          .Attr("Tindices: type")
          .Attr("worker: int = 0")
          .Attr("rule: string = \"asgd\"")
          .SetIsStateful()
          .Doc("Rows `indices` of the variable, recording `worker`'s pull (and, for the DC-ASGD "
               "rules, the rows as its backup; ops/ps_rows_ops.cc).")
          .SetShapeFn([](InferenceContext* c) {
            const TensorShape& var = c->input_shape(0);
            const TensorShape& idx = c->input_shape(1);
            if (var.rank() < 1 || idx.rank() != 1) {
              c->set_output(0, TensorShape::UnknownRank());
              return absl::OkStatus();
            }
            std::vector<int64_t> dims = var.dims();
            dims[0] = idx.dim(0);
            c->set_output(0, TensorShape(dims));
            return absl::OkStatus();
          })));
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("PsPushRows")
          .Input("ref: Ref(T)")
          .Input("indices: Tindices")
          .Input("values: T")
          .Output("delay: int64")
          .Attr("T: type")
          .Attr("Tindices: type")
          .Attr("worker: int = 0")
          .Attr("rule: string = \"asgd\"")
          .Attr("learning_rate: float = 0.01")
          .Attr("lambda: float = 0")
          .Attr("momentum: float = 0.95")
          .Attr("epsilon: float = 1e-7")
          .Attr("beta: float = 1")
          .SetIsStateful()
          .Doc("Applies `values` to rows `indices` by the variable's rule (asgd, hogwild, "
               "adadelay, dc_asgd, dc_asgd_a; ops/ps_rows_ops.cc); the push's delay.")
          .SetShapeFn([](InferenceContext* c) {
            c->set_output(0, TensorShape());
            return absl::OkStatus();
          })));
  for (DType dt : {DType::kFloat32, DType::kFloat64}) {
    SLUICE_RETURN_IF_ERROR(
        kernels->Register("PsPullRows", kDeviceCpu, dt, MakeVariableUpdateKernel<PsPullRowsOp>));
  }
  SLUICE_RETURN_IF_ERROR(kernels->Register("PsPushRows", kDeviceCpu, DType::kFloat32,
                                           MakeVariableUpdateKernel<PsPushRowsOp<float>>));
  return kernels->Register("PsPushRows", kDeviceCpu, DType::kFloat64,
                           MakeVariableUpdateKernel<PsPushRowsOp<double>>);
}

}  // namespace ps_internal
}  // namespace sluice
