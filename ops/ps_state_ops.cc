// Saving and restoring a parameter server's per-variable state (ops/ps_state.h), so that a
// checkpoint carries the clocks, backups and histograms with the values they describe:
//   PsExportState(ref var) -> value, clocks (int64), values (T): the variable's value and its
//                             state, read under both locks (one consistent moment)
//   PsImportState(ref var, clocks, values) -> the clock: replaces the state with an exported
//                             one, checked whole first; it then describes the variable's
//                             current initialisation (restore the value first)
// `clocks` lays out the scalars, the per-worker records, the delay histogram and the row
// backups (below); `values` the DC-ASGD backups of the workers that have one, then DC-ASGD-a's
// mean square and the synchronous aggregation's partial sum when present (each the variable's
// size), then the rows of the row backups. Pulls
// waiting for slower workers are not part of it: restore while no step runs.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "graph/shape_inference.h"
#include "ops/kernel_util.h"
#include "ops/op_builder.h"
#include "ops/ps_ops.h"
#include "ops/ps_state.h"
#include "ops/state_ops.h"

namespace sluice {
namespace {

using ps_internal::PsState;
using ps_internal::StartOverIfReinitialized;
using ps_internal::StateOf;

constexpr int64_t kFormat = 1;
constexpr const char* kRules[] = {"",          "asgd",     "hogwild", "dc_asgd",
                                  "dc_asgd_a", "adadelay", "sync"};
constexpr int64_t kNumRules = sizeof(kRules) / sizeof(kRules[0]);
// clocks: [format, rule, clock, version, accum_count, dropped, has_mean_square, has_accum,
//          W, W x (worker, pushes, pull clock, pulled version, pushed version, has_backup),
//          D, D x (tau, pushes), B, B x (worker, k, k row numbers)]; -1 where a worker has no
//          entry. B: the DC-ASGD backups of row pulls, their k rows' values in `values` last.
constexpr int64_t kHeader = 9;
constexpr int64_t kWorkerFields = 6;

int64_t Get(const std::map<int64_t, int64_t>& m, int64_t key) {
  auto it = m.find(key);
  return it == m.end() ? -1 : it->second;
}

class PsStateKernel : public OpKernel {
 public:
  explicit PsStateKernel(const Node& node)
      : OpKernel(node), name_(VariableNameOf(*node.input(0).node)) {}

 protected:
  absl::StatusOr<std::shared_ptr<Variable>> InitializedVariable(OpKernelContext* ctx) const {
    ctx->release_input(0);  // Input 0 only names the variable.
    std::shared_ptr<Variable> var = ctx->resources()->LookupVariable(name_);
    if (var == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("variable '", name_, "' is not initialized"));
    }
    return var;
  }

  const std::string name_;
};

class PsExportStateOp : public PsStateKernel {
 public:
  using PsStateKernel::PsStateKernel;

  absl::Status Compute(OpKernelContext* ctx) override {
    SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<Variable> var, InitializedVariable(ctx));
    SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<PsState> state, StateOf(ctx, name_));
    Variable& v = *var;
    absl::MutexLock lock(&v.mu);
    if (!v.initialized) {
      return absl::FailedPreconditionError(
          absl::StrCat("variable '", name_, "' is not initialized"));
    }
    PsState& s = *state;
    absl::MutexLock state_lock(&s.mu);
    StartOverIfReinitialized(v, &s);
    int64_t rule = 0;
    while (rule < kNumRules && s.rule != kRules[rule]) ++rule;
    std::vector<int64_t> workers;  // Every worker any map knows.
    for (const auto* m : {&s.worker_clock, &s.pull_clock, &s.pulled_version, &s.pushed_version}) {
      for (const auto& [w, unused] : *m) workers.push_back(w);
    }
    for (const auto& [w, unused] : s.backup) workers.push_back(w);
    std::sort(workers.begin(), workers.end());
    workers.erase(std::unique(workers.begin(), workers.end()), workers.end());
    // A default Tensor is an unallocated scalar: present means allocated at the variable's size.
    const int64_t n = v.value.num_elements();
    const auto present = [n](const Tensor& t) {
      return t.IsInitialized() && t.num_elements() == n && t.TotalBytes() > 0;
    };
    const bool has_ms = present(s.mean_square);
    const bool has_accum = s.accum_count > 0 && present(s.accum);
    std::vector<int64_t> clocks = {kFormat,   rule,          s.clock,
                                   s.version, s.accum_count, s.dropped,
                                   has_ms,    has_accum,     static_cast<int64_t>(workers.size())};
    std::vector<const Tensor*> pieces;
    for (int64_t w : workers) {
      auto b = s.backup.find(w);
      const bool has_backup = b != s.backup.end() && present(b->second);
      clocks.insert(clocks.end(),
                    {w, Get(s.worker_clock, w), Get(s.pull_clock, w), Get(s.pulled_version, w),
                     Get(s.pushed_version, w), has_backup ? 1 : 0});
      if (has_backup) pieces.push_back(&b->second);
    }
    clocks.push_back(static_cast<int64_t>(s.delays.size()));
    for (const auto& [tau, count] : s.delays) clocks.insert(clocks.end(), {tau, count});
    if (has_ms) pieces.push_back(&s.mean_square);
    if (has_accum) pieces.push_back(&s.accum);
    clocks.push_back(static_cast<int64_t>(s.row_backup.size()));
    for (const auto& [w, b] : s.row_backup) {
      clocks.insert(clocks.end(), {w, static_cast<int64_t>(b.rows.size())});
      clocks.insert(clocks.end(), b.rows.begin(), b.rows.end());
      pieces.push_back(&b.values);
    }
    int64_t total = 0;
    for (const Tensor* t : pieces) total += t->num_elements();
    SLUICE_ASSIGN_OR_RETURN(Tensor * values, ctx->allocate_output(2, TensorShape({total})));
    char* dst = static_cast<char*>(values->raw_data());
    for (const Tensor* t : pieces) {
      std::memcpy(dst, t->raw_data(), t->TotalBytes());
      dst += t->TotalBytes();
    }
    ctx->set_output(0, v.value);
    ctx->set_output(1, Tensor::FromVector<int64_t>(clocks));
    return absl::OkStatus();
  }
};

class PsImportStateOp : public PsStateKernel {
 public:
  using PsStateKernel::PsStateKernel;

  absl::Status Compute(OpKernelContext* ctx) override {
    SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<Variable> var, InitializedVariable(ctx));
    SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<PsState> state, StateOf(ctx, name_));
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> c, IndexValues(ctx->input(1), "clocks"));
    const Tensor& values = ctx->input(2);
    Variable& v = *var;
    absl::MutexLock lock(&v.mu);
    if (!v.initialized) {
      return absl::FailedPreconditionError(
          absl::StrCat("variable '", name_, "' is not initialized"));
    }
    const auto bad = [&](absl::string_view what) {
      return absl::InvalidArgumentError(
          absl::StrCat("the parameter-server state saved for variable '", name_, "' ", what));
    };
    if (c.size() < kHeader || c[0] != kFormat) return bad("has an unknown layout");
    const int64_t workers = c[8];
    if (c[1] < 0 || c[1] >= kNumRules || workers < 0 ||
        static_cast<int64_t>(c.size()) < kHeader + workers * kWorkerFields + 1) {
      return bad("is malformed");
    }
    const int64_t delays_at = kHeader + workers * kWorkerFields;
    const int64_t num_delays = c[delays_at];
    const int64_t rows_at = delays_at + 1 + 2 * num_delays;
    if (num_delays < 0 || static_cast<int64_t>(c.size()) < rows_at + 1) return bad("is malformed");
    // The row backups: (worker, k, k rows) each, after their count.
    std::vector<std::pair<int64_t, std::vector<int64_t>>> row_backups;
    const int64_t width =
        v.value.rank() < 1 || v.value.dim(0) == 0 ? 0 : v.value.num_elements() / v.value.dim(0);
    int64_t at = rows_at + 1, backup_rows = 0;
    for (int64_t b = 0; b < c[rows_at]; ++b) {
      if (at + 2 > static_cast<int64_t>(c.size())) return bad("is malformed");
      const int64_t worker = c[at], k = c[at + 1];
      if (k < 0 || at + 2 + k > static_cast<int64_t>(c.size())) return bad("is malformed");
      std::vector<int64_t> rows(c.begin() + at + 2, c.begin() + at + 2 + k);
      for (int64_t r : rows) {
        if (v.value.rank() < 1 || r < 0 || r >= v.value.dim(0)) return bad("names a bad row");
      }
      backup_rows += k;
      row_backups.emplace_back(worker, std::move(rows));
      at += 2 + k;
    }
    if (c[rows_at] < 0 || at != static_cast<int64_t>(c.size())) return bad("is malformed");
    int64_t pieces = (c[6] != 0) + (c[7] != 0);
    for (int64_t i = 0; i < workers; ++i) pieces += c[kHeader + i * kWorkerFields + 5] != 0;
    const int64_t n = v.value.num_elements();
    const int64_t needed = pieces * n + backup_rows * width;
    if (values.dtype() != v.value.dtype() || values.num_elements() != needed) {
      return bad(absl::StrCat("holds ", values.num_elements(), " ", DTypeName(values.dtype()),
                              " values; the variable (", DTypeName(v.value.dtype()), " ",
                              v.value.shape().DebugString(), ") needs ", needed));
    }
    PsState& s = *state;
    absl::MutexLock state_lock(&s.mu);
    ps_internal::StartOver(v, &s);  // Replaced whole: everything but the waiting pulls.
    s.rule = kRules[c[1]];
    s.clock = c[2];
    s.version = c[3];
    s.accum_count = c[4];
    s.dropped = c[5];
    const char* src = static_cast<const char*>(values.raw_data());
    const DType dtype = v.value.dtype();
    const TensorShape shape = v.value.shape();
    const auto next_piece = [&] {
      Tensor t(dtype, shape);
      std::memcpy(t.raw_data(), src, t.TotalBytes());
      src += t.TotalBytes();
      return t;
    };
    for (int64_t i = 0; i < workers; ++i) {
      const int64_t* r = &c[kHeader + i * kWorkerFields];
      if (r[1] >= 0) s.worker_clock[r[0]] = r[1];
      if (r[2] >= 0) s.pull_clock[r[0]] = r[2];
      if (r[3] >= 0) s.pulled_version[r[0]] = r[3];
      if (r[4] >= 0) s.pushed_version[r[0]] = r[4];
      if (r[5] != 0) s.backup[r[0]] = next_piece();
    }
    for (int64_t i = 0; i < num_delays; ++i) {
      s.delays[c[delays_at + 1 + 2 * i]] = c[delays_at + 2 + 2 * i];
    }
    if (c[6] != 0) s.mean_square = next_piece();
    if (c[7] != 0) s.accum = next_piece();
    for (auto& [worker, rows] : row_backups) {
      std::vector<int64_t> dims = shape.dims();
      dims[0] = static_cast<int64_t>(rows.size());
      Tensor values_then(dtype, TensorShape(dims));
      std::memcpy(values_then.raw_data(), src, values_then.TotalBytes());
      src += values_then.TotalBytes();
      s.row_backup[worker] = {std::move(rows), std::move(values_then)};
    }
    ctx->set_output(0, Tensor::Scalar<int64_t>(s.clock));
    return absl::OkStatus();
  }
};

}  // namespace

namespace ps_internal {

absl::Status RegisterPsStateOps(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("PsExportState")
          .Input("ref: Ref(T)")
          .Output("value: T")
          .Output("clocks: int64")
          .Output("values: T")
          .Attr("T: {float32, float64}")
          .SetIsStateful()
          .Doc("The variable's value and its parameter-server state, read at one moment "
               "(ops/ps_state_ops.cc).")
          .SetShapeFn([](InferenceContext* c) {
            c->set_output(0, c->input_shape(0));
            c->set_output(1, TensorShape({kUnknownDim}));
            c->set_output(2, TensorShape({kUnknownDim}));
            return absl::OkStatus();
          })));
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("PsImportState")
          .Input("ref: Ref(T)")
          .Input("clocks: int64")
          .Input("values: T")
          .Output("clock: int64")
          .Attr("T: {float32, float64}")
          .SetIsStateful()
          .Doc("Replaces the variable's parameter-server state with one PsExportState made; "
               "returns its clock.")
          .SetShapeFn([](InferenceContext* c) {
            c->set_output(0, TensorShape());
            return absl::OkStatus();
          })));
  for (DType dt : {DType::kFloat32, DType::kFloat64}) {
    SLUICE_RETURN_IF_ERROR(kernels->Register("PsExportState", kDeviceCpu, dt,
                                             MakeVariableUpdateKernel<PsExportStateOp>));
    SLUICE_RETURN_IF_ERROR(kernels->Register("PsImportState", kDeviceCpu, dt,
                                             MakeVariableUpdateKernel<PsImportStateOp>));
  }
  return absl::OkStatus();
}

}  // namespace ps_internal
}  // namespace sluice
