#include "ops/training_ops.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "graph/shape_inference.h"
#include "ops/kernel_util.h"
#include "ops/op_builder.h"
#include "ops/state_ops.h"

namespace sluice {
namespace {

// ------------------------------------------------------------------------------------------
// Shape functions: ref inputs first, then scalars and the gradient at known positions.

struct UpdateSignature {
  int num_refs;
  std::vector<int> scalars;  // Input indices of scalar hyper-parameters.
  int grad;                  // Input index of the gradient.
  int indices = -1;          // Sparse updates: the rows the gradient's rows update.
};

// A variable's shape without its first dimension (a row); unknown rank stays unknown.
TensorShape RowShapeOf(const TensorShape& s) {
  if (s.unknown_rank() || s.rank() == 0) return TensorShape::UnknownRank();
  TensorShape row = s;
  row.RemoveDim(0);
  return row;
}

ShapeFn UpdateShapeFn(UpdateSignature sig) {
  return [sig](InferenceContext* c) -> absl::Status {
    const TensorShape& grad = c->input_shape(sig.grad);
    if (sig.indices >= 0) {
      const TensorShape& idx = c->input_shape(sig.indices);
      if (!idx.unknown_rank() && idx.rank() != 1) {
        return InferenceContext::Error(
            absl::StrCat("indices must be a vector, got shape ", idx.DebugString()));
      }
      for (int i = 0; i < sig.num_refs; ++i) {
        if (!RowShapeOf(c->input_shape(i)).IsCompatibleWith(RowShapeOf(grad))) {
          return InferenceContext::Error(absl::StrCat(
              "cannot update rows of a variable of shape ", c->input_shape(i).DebugString(),
              " (input ", i, ") with gradient rows of shape ", grad.DebugString()));
        }
      }
      return absl::OkStatus();
    }
    for (int i = 0; i < sig.num_refs; ++i) {
      if (!c->input_shape(i).IsCompatibleWith(grad)) {
        return InferenceContext::Error(
            absl::StrCat("cannot update a variable of shape ", c->input_shape(i).DebugString(),
                         " (input ", i, ") with a gradient of shape ", grad.DebugString()));
      }
    }
    for (int i : sig.scalars) {
      const TensorShape& s = c->input_shape(i);
      if (!s.unknown_rank() && s.rank() != 0) {
        return InferenceContext::Error(
            absl::StrCat("input ", i, " must be a scalar, got shape ", s.DebugString()));
      }
    }
    return absl::OkStatus();
  };
}

// ------------------------------------------------------------------------------------------
// Kernels

// Locks a set of variables in address order; unlocks on destruction.
template <int N>
class VariablesLock {
 public:
  explicit VariablesLock(const std::array<std::shared_ptr<Variable>, N>& vars) {
    for (int i = 0; i < N; ++i) order_[i] = vars[i].get();
    std::sort(order_.begin(), order_.end());
    for (Variable* v : order_) v->mu.Lock();
  }
  ~VariablesLock() {
    for (auto it = order_.rbegin(); it != order_.rend(); ++it) (*it)->mu.Unlock();
  }
  VariablesLock(const VariablesLock&) = delete;
  VariablesLock& operator=(const VariablesLock&) = delete;

 private:
  std::array<Variable*, N> order_;
};

// Base of the update kernels: resolves, locks and checks the N variables behind the ref inputs
// and hands their values (made exclusively owned) to Update().
template <typename T, int N>
class ApplyOpBase : public OpKernel {
 public:
  // `indices_index` >= 0: a sparse update, the gradient's rows for the variables' rows that
  // input names.
  ApplyOpBase(const Node& node, int grad_index, int indices_index = -1)
      : OpKernel(node), grad_index_(grad_index), indices_index_(indices_index) {
    for (int i = 0; i < N; ++i) names_[i] = VariableNameOf(*node.input(i).node);
  }

  absl::Status Compute(OpKernelContext* ctx) final {
    std::array<std::shared_ptr<Variable>, N> vars;
    for (int i = 0; i < N; ++i) {
      ctx->release_input(i);  // The handle's empty tensor; pins nothing.
      vars[i] = ctx->resources()->LookupOrCreateVariable(names_[i]);
    }
    const Tensor& grad = ctx->input(grad_index_);
    std::vector<int64_t> rows;
    if (indices_index_ >= 0) {
      SLUICE_ASSIGN_OR_RETURN(rows, IndexValues(ctx->input(indices_index_), "indices"));
    }
    VariablesLock<N> lock(vars);
    std::array<Tensor*, N> values;
    for (int i = 0; i < N; ++i) {
      Variable& v = *vars[i];
      v.mu.AssertHeld();  // `lock` holds every variable's mutex (the analysis cannot see it).
      if (!v.initialized) {
        return absl::FailedPreconditionError(
            absl::StrCat("variable '", names_[i], "' is not initialized"));
      }
      if (v.value.dtype() != DTypeOf<T>::value) {
        return absl::InvalidArgumentError(
            absl::StrCat("variable '", names_[i], "' holds ", DTypeName(v.value.dtype()),
                         " values, the update is ", DTypeName(DTypeOf<T>::value)));
      }
      if (indices_index_ >= 0) {
        SLUICE_RETURN_IF_ERROR(CheckRows(names_[i], v.value.shape(), grad.shape(), rows));
      } else if (v.value.shape() != grad.shape()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "cannot update variable '", names_[i], "' of shape ", v.value.shape().DebugString(),
            " with a gradient of shape ", grad.shape().DebugString()));
      }
    }
    for (int i = 0; i < N; ++i) {
      Variable& v = *vars[i];
      v.mu.AssertHeld();
      // Copy-on-write: a reader still holds the buffer, so the update goes to a copy.
      if (!v.value.RefCountIsOne()) v.value = v.value.DeepCopy();
      values[i] = &v.value;
    }
    return Update(ctx, values, grad, rows);
  }

 protected:
  // A sparse update's gradient holds one row per index, each a row of the variable in range.
  static absl::Status CheckRows(const std::string& name, const TensorShape& var,
                                const TensorShape& grad, const std::vector<int64_t>& rows) {
    if (var.rank() < 1 || grad.rank() < 1 || RowShapeOf(var) != RowShapeOf(grad) ||
        grad.dim(0) != static_cast<int64_t>(rows.size())) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot update ", rows.size(), " rows of variable '", name, "' of shape ",
                       var.DebugString(), " with gradient rows of shape ", grad.DebugString()));
    }
    for (size_t j = 0; j < rows.size(); ++j) {
      if (rows[j] < 0 || rows[j] >= var.dim(0)) {
        return absl::InvalidArgumentError(absl::StrCat("indices[", j, "] = ", rows[j],
                                                       " is not a row of variable '", name, "' (",
                                                       var.dim(0), " rows)"));
      }
    }
    return absl::OkStatus();
  }

  // The scalar hyper-parameter at input i.
  static absl::StatusOr<T> Scalar(OpKernelContext* ctx, int i, absl::string_view what) {
    const Tensor& t = ctx->input(i);
    if (t.rank() != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " must be a scalar, got shape ", t.shape().DebugString()));
    }
    return t.scalar<T>();
  }
  // `rows`: a sparse update's variable rows (checked), one per gradient row; else empty.
  virtual absl::Status Update(OpKernelContext* ctx, const std::array<Tensor*, N>& vars,
                              const Tensor& grad, const std::vector<int64_t>& rows) = 0;

 private:
  const int grad_index_;
  const int indices_index_;
  std::array<std::string, N> names_;
};

template <typename T>
class ApplyGradientDescentOp : public ApplyOpBase<T, 1> {
 public:
  explicit ApplyGradientDescentOp(const Node& node) : ApplyOpBase<T, 1>(node, 2) {}

 protected:
  absl::Status Update(OpKernelContext* ctx, const std::array<Tensor*, 1>& vars, const Tensor& grad,
                      const std::vector<int64_t>&) override {
    SLUICE_ASSIGN_OR_RETURN(T alpha, this->Scalar(ctx, 1, "alpha"));
    auto var = vars[0]->flat<T>();
    EvalExpr(*ctx, var, var - grad.flat<T>() * alpha);
    return absl::OkStatus();
  }
};

template <typename T>
class ApplyMomentumOp : public ApplyOpBase<T, 2> {
 public:
  explicit ApplyMomentumOp(const Node& node)
      : ApplyOpBase<T, 2>(node, 3), use_nesterov_(this->template Attr<bool>("use_nesterov")) {}

 protected:
  absl::Status Update(OpKernelContext* ctx, const std::array<Tensor*, 2>& vars, const Tensor& grad,
                      const std::vector<int64_t>&) override {
    SLUICE_ASSIGN_OR_RETURN(T lr, this->Scalar(ctx, 2, "lr"));
    SLUICE_ASSIGN_OR_RETURN(T momentum, this->Scalar(ctx, 4, "momentum"));
    auto var = vars[0]->flat<T>();
    auto accum = vars[1]->flat<T>();
    auto g = grad.flat<T>();
    EvalExpr(*ctx, accum, accum * momentum + g);
    if (use_nesterov_) {
      EvalExpr(*ctx, var, var - g * lr - accum * (momentum * lr));
    } else {
      EvalExpr(*ctx, var, var - accum * lr);
    }
    return absl::OkStatus();
  }

 private:
  const bool use_nesterov_;
};

template <typename T>
class ApplyAdagradOp : public ApplyOpBase<T, 2> {
 public:
  explicit ApplyAdagradOp(const Node& node) : ApplyOpBase<T, 2>(node, 3) {}

 protected:
  absl::Status Update(OpKernelContext* ctx, const std::array<Tensor*, 2>& vars, const Tensor& grad,
                      const std::vector<int64_t>&) override {
    SLUICE_ASSIGN_OR_RETURN(T lr, this->Scalar(ctx, 2, "lr"));
    auto var = vars[0]->flat<T>();
    auto accum = vars[1]->flat<T>();
    auto g = grad.flat<T>();
    EvalExpr(*ctx, accum, accum + g.square());
    EvalExpr(*ctx, var, var - g * accum.rsqrt() * lr);
    return absl::OkStatus();
  }
};

// The gradient rows of a sparse update summed per distinct index (as TensorFlow's optimizers
// do before a sparse update), so each touched row is updated once, exactly as the dense update
// with the scattered gradient would update it.
template <typename T>
void SumRowsByIndex(const std::vector<int64_t>& rows, const T* g, int64_t width,
                    std::vector<int64_t>* unique, std::vector<T>* summed) {
  std::map<int64_t, size_t> slot;
  for (size_t j = 0; j < rows.size(); ++j) {
    auto [it, added] = slot.emplace(rows[j], unique->size());
    if (added) {
      unique->push_back(rows[j]);
      summed->insert(summed->end(), g + j * width, g + (j + 1) * width);
    } else {
      T* into = summed->data() + it->second * width;
      for (int64_t e = 0; e < width; ++e) into[e] += g[j * width + e];
    }
  }
}

// Calls f(var row, accum row, summed gradient row, width) once per distinct row of a sparse
// update of (var, accum) (nothing when `rows` is empty).
template <typename T, typename F>
void ForEachSummedRow(const std::array<Tensor*, 2>& vars, const Tensor& grad,
                      const std::vector<int64_t>& rows, F&& f) {
  if (rows.empty()) return;
  const int64_t width = grad.num_elements() / static_cast<int64_t>(rows.size());
  std::vector<int64_t> unique;
  std::vector<T> g;
  SumRowsByIndex(rows, grad.data<T>(), width, &unique, &g);
  for (size_t j = 0; j < unique.size(); ++j) {
    f(vars[0]->data<T>() + unique[j] * width, vars[1]->data<T>() + unique[j] * width,
      g.data() + j * width, width);
  }
}

// The sparse forms (TensorFlow's SparseApplyMomentum and SparseApplyAdagrad): the dense
// arithmetic on the rows `indices` names, with their gradient rows summed per row; the other
// rows and their accumulators are left as they are (for Momentum that is not the dense update,
// which keeps moving rows with momentum: TensorFlow's sparse form does the same).
template <typename T>
class SparseApplyMomentumOp : public ApplyOpBase<T, 2> {
 public:
  explicit SparseApplyMomentumOp(const Node& node)
      : ApplyOpBase<T, 2>(node, 3, 4), use_nesterov_(this->template Attr<bool>("use_nesterov")) {}

 protected:
  absl::Status Update(OpKernelContext* ctx, const std::array<Tensor*, 2>& vars, const Tensor& grad,
                      const std::vector<int64_t>& rows) override {
    SLUICE_ASSIGN_OR_RETURN(T lr, this->Scalar(ctx, 2, "lr"));
    SLUICE_ASSIGN_OR_RETURN(T momentum, this->Scalar(ctx, 5, "momentum"));
    const bool nesterov = use_nesterov_;
    ForEachSummedRow<T>(vars, grad, rows, [&](T* w, T* a, const T* g, int64_t width) {
      for (int64_t e = 0; e < width; ++e) {
        a[e] = a[e] * momentum + g[e];
        w[e] -= nesterov ? g[e] * lr + a[e] * (momentum * lr) : a[e] * lr;
      }
    });
    return absl::OkStatus();
  }

 private:
  const bool use_nesterov_;
};

template <typename T>
class SparseApplyAdagradOp : public ApplyOpBase<T, 2> {
 public:
  explicit SparseApplyAdagradOp(const Node& node) : ApplyOpBase<T, 2>(node, 3, 4) {}

 protected:
  absl::Status Update(OpKernelContext* ctx, const std::array<Tensor*, 2>& vars, const Tensor& grad,
                      const std::vector<int64_t>& rows) override {
    SLUICE_ASSIGN_OR_RETURN(T lr, this->Scalar(ctx, 2, "lr"));
    ForEachSummedRow<T>(vars, grad, rows, [&](T* w, T* a, const T* g, int64_t width) {
      for (int64_t e = 0; e < width; ++e) {
        a[e] += g[e] * g[e];
        w[e] -= lr * g[e] / std::sqrt(a[e]);
      }
    });
    return absl::OkStatus();
  }
};

template <typename T>
class ApplyAdamOp : public ApplyOpBase<T, 3> {
 public:
  explicit ApplyAdamOp(const Node& node) : ApplyOpBase<T, 3>(node, 9) {}

 protected:
  absl::Status Update(OpKernelContext* ctx, const std::array<Tensor*, 3>& vars, const Tensor& grad,
                      const std::vector<int64_t>&) override {
    SLUICE_ASSIGN_OR_RETURN(T beta1_power, this->Scalar(ctx, 3, "beta1_power"));
    SLUICE_ASSIGN_OR_RETURN(T beta2_power, this->Scalar(ctx, 4, "beta2_power"));
    SLUICE_ASSIGN_OR_RETURN(T lr, this->Scalar(ctx, 5, "lr"));
    SLUICE_ASSIGN_OR_RETURN(T beta1, this->Scalar(ctx, 6, "beta1"));
    SLUICE_ASSIGN_OR_RETURN(T beta2, this->Scalar(ctx, 7, "beta2"));
    SLUICE_ASSIGN_OR_RETURN(T epsilon, this->Scalar(ctx, 8, "epsilon"));
    const T lr_t = lr * std::sqrt(T(1) - beta2_power) / (T(1) - beta1_power);
    auto var = vars[0]->flat<T>();
    auto m = vars[1]->flat<T>();
    auto v = vars[2]->flat<T>();
    auto g = grad.flat<T>();
    EvalExpr(*ctx, m, m + (g - m) * (T(1) - beta1));
    EvalExpr(*ctx, v, v + (g.square() - v) * (T(1) - beta2));
    EvalExpr(*ctx, var, var - m * lr_t / (v.sqrt() + epsilon));
    return absl::OkStatus();
  }
};

// var -= alpha * op(a) op(b) as one GEMM accumulating into the variable: no gradient tensor is
// materialised, zeroed or read back. With several intra-op threads, column blocks of the
// variable are updated in parallel.
template <typename T>
class ApplyGradientDescentMatMulOp : public OpKernel {
 public:
  explicit ApplyGradientDescentMatMulOp(const Node& node)
      : OpKernel(node),
        name_(VariableNameOf(*node.input(0).node)),
        transpose_a_(Attr<bool>("transpose_a")),
        transpose_b_(Attr<bool>("transpose_b")) {}

  absl::Status Compute(OpKernelContext* ctx) override {
    ctx->release_input(0);
    std::shared_ptr<Variable> var = ctx->resources()->LookupOrCreateVariable(name_);
    const Tensor& alpha_t = ctx->input(1);
    const Tensor& a = ctx->input(2);
    const Tensor& b = ctx->input(3);
    if (alpha_t.rank() != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("alpha must be a scalar, got shape ", alpha_t.shape().DebugString()));
    }
    if (a.rank() != 2 || b.rank() != 2) {
      return absl::InvalidArgumentError(absl::StrCat("a and b must be matrices, got ",
                                                     a.shape().DebugString(), " and ",
                                                     b.shape().DebugString()));
    }
    const int64_t m = a.dim(transpose_a_ ? 1 : 0), k = a.dim(transpose_a_ ? 0 : 1);
    const int64_t n = b.dim(transpose_b_ ? 0 : 1);
    if (k != b.dim(transpose_b_ ? 1 : 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "inner dimensions differ: ", a.shape().DebugString(), " x ", b.shape().DebugString()));
    }
    absl::MutexLock lock(&var->mu);
    if (!var->initialized) {
      return absl::FailedPreconditionError(
          absl::StrCat("variable '", name_, "' is not initialized"));
    }
    if (var->value.dtype() != DTypeOf<T>::value || var->value.shape() != TensorShape({m, n})) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot update variable '", name_, "' of ", DTypeName(var->value.dtype()),
                       " ", var->value.shape().DebugString(), " with a ",
                       DTypeName(DTypeOf<T>::value), " product of shape [", m, ",", n, "]"));
    }
    if (!var->value.RefCountIsOne()) var->value = var->value.DeepCopy();  // Copy-on-write.
    if (m == 0 || n == 0 || k == 0) return absl::OkStatus();
    const T alpha = alpha_t.scalar<T>();
    T* c = var->value.data<T>();
    const int threads = ctx->eigen_device().numThreads();
    if (threads <= 1 || m * n * k < int64_t{64} * 64 * 64 || n < 32) {
      UpdateColumns(a, b, alpha, c, m, n, 0, n);
      return absl::OkStatus();
    }
    // One block of columns (a multiple of 16) per thread.
    const int64_t per = ((n + threads - 1) / threads + 15) / 16 * 16;
    const int64_t blocks = (n + per - 1) / per;
    ctx->eigen_device().parallelFor(
        blocks, Eigen::TensorOpCost(0, 0, 1e9), [&](Eigen::Index first, Eigen::Index last) {
          for (Eigen::Index i = first; i < last; ++i) {
            UpdateColumns(a, b, alpha, c, m, n, i * per, std::min(n, (i + 1) * per));
          }
        });
    return absl::OkStatus();
  }

 private:
  // c[:, j0:j1] -= alpha * op(a) op(b)[:, j0:j1].
  void UpdateColumns(const Tensor& a, const Tensor& b, T alpha, T* c, int64_t m, int64_t n,
                     int64_t j0, int64_t j1) const {
    using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    Eigen::Map<const Matrix> am(a.data<T>(), a.dim(0), a.dim(1));
    Eigen::Map<const Matrix> bm(b.data<T>(), b.dim(0), b.dim(1));
    Eigen::Map<Matrix, 0, Eigen::OuterStride<>> cm(c + j0, m, j1 - j0, Eigen::OuterStride<>(n));
    const int64_t w = j1 - j0;
    if (!transpose_a_ && !transpose_b_) {
      cm.noalias() -= alpha * (am * bm.middleCols(j0, w));
    } else if (transpose_a_ && !transpose_b_) {
      cm.noalias() -= alpha * (am.transpose() * bm.middleCols(j0, w));
    } else if (!transpose_a_ && transpose_b_) {
      cm.noalias() -= alpha * (am * bm.middleRows(j0, w).transpose());
    } else {
      cm.noalias() -= alpha * (am.transpose() * bm.middleRows(j0, w).transpose());
    }
  }

  const std::string name_;
  const bool transpose_a_, transpose_b_;
};

absl::Status MatMulUpdateShape(InferenceContext* c) {
  SLUICE_ASSIGN_OR_RETURN(bool ta, c->GetAttr<bool>("transpose_a"));
  SLUICE_ASSIGN_OR_RETURN(bool tb, c->GetAttr<bool>("transpose_b"));
  const TensorShape& a = c->input_shape(2);
  const TensorShape& b = c->input_shape(3);
  if (!c->input_shape(1).unknown_rank() && c->input_shape(1).rank() != 0) {
    return InferenceContext::Error(
        absl::StrCat("alpha must be a scalar, got shape ", c->input_shape(1).DebugString()));
  }
  if (a.rank() != 2 || b.rank() != 2) {
    if (a.unknown_rank() || b.unknown_rank()) return absl::OkStatus();
    return InferenceContext::Error(
        absl::StrCat("a and b must be matrices, got ", a.DebugString(), " and ", b.DebugString()));
  }
  const TensorShape product({a.dim(ta ? 1 : 0), b.dim(tb ? 0 : 1)});
  if (!c->input_shape(0).IsCompatibleWith(product)) {
    return InferenceContext::Error(absl::StrCat("cannot update a variable of shape ",
                                                c->input_shape(0).DebugString(),
                                                " by a product of shape ", product.DebugString()));
  }
  return absl::OkStatus();
}

// Kernel factory: the ref inputs must come from Variable nodes naming distinct variables.
template <typename K>
absl::StatusOr<std::unique_ptr<OpKernel>> MakeApplyKernel(const Node& node, int num_refs) {
  std::vector<std::string> names;
  for (int i = 0; i < num_refs; ++i) {
    const Node* src = node.input(i).node;
    if (src->op() != "Variable") {
      return absl::InvalidArgumentError(absl::StrCat(node.DebugName(), ": input ", i,
                                                     " must come from a Variable node, but "
                                                     "comes from ",
                                                     src->DebugName()));
    }
    names.push_back(VariableNameOf(*src));
    for (int j = 0; j < i; ++j) {
      if (names[j] == names[i]) {
        return absl::InvalidArgumentError(absl::StrCat(node.DebugName(), ": inputs ", j, " and ", i,
                                                       " are the same variable '", names[i], "'"));
      }
    }
  }
  return std::unique_ptr<OpKernel>(new K(node));
}

template <template <typename> class K>
absl::Status RegisterApply(OpRegistry* ops, KernelRegistry* kernels, const OpDefBuilder& def,
                           absl::string_view op, UpdateSignature sig) {
  SLUICE_ASSIGN_OR_RETURN(OpDef built, def.Build());
  for (size_t i = 0; i < built.inputs.size(); ++i) {
    // The kernel resolves exactly the leading num_refs inputs as variables.
    if (built.inputs[i].is_ref != (static_cast<int>(i) < sig.num_refs)) {
      return absl::InternalError(absl::StrCat("op ", op, ": input ", i, " ('", built.inputs[i].name,
                                              "') must ", built.inputs[i].is_ref ? "not " : "",
                                              "be declared Ref(T)"));
    }
  }
  SLUICE_RETURN_IF_ERROR(ops->Register(OpDefBuilder(def).SetShapeFn(UpdateShapeFn(sig))));
  const int n = sig.num_refs;
  SLUICE_RETURN_IF_ERROR(kernels->Register(op, kDeviceCpu, DType::kFloat32, [n](const Node& node) {
    return MakeApplyKernel<K<float>>(node, n);
  }));
  return kernels->Register(op, kDeviceCpu, DType::kFloat64,
                           [n](const Node& node) { return MakeApplyKernel<K<double>>(node, n); });
}

}  // namespace

absl::Status RegisterTrainingOps(OpRegistry* ops, KernelRegistry* kernels) {
  constexpr char kTypes[] = "T: {float32, float64}";
  SLUICE_RETURN_IF_ERROR(RegisterApply<ApplyGradientDescentOp>(
      ops, kernels,
      OpDefBuilder("ApplyGradientDescent")
          .Input("var: Ref(T)")
          .Input("alpha: T")
          .Input("delta: T")
          .Attr(kTypes)
          .SetIsStateful()
          .Doc("var -= alpha * delta, in place. `var` is a write handle (a Variable node)."),
      "ApplyGradientDescent", {1, {1}, 2}));
  SLUICE_RETURN_IF_ERROR(RegisterApply<ApplyMomentumOp>(
      ops, kernels,
      OpDefBuilder("ApplyMomentum")
          .Input("var: Ref(T)")
          .Input("accum: Ref(T)")
          .Input("lr: T")
          .Input("grad: T")
          .Input("momentum: T")
          .Attr(kTypes)
          .Attr("use_nesterov: bool = false")
          .SetIsStateful()
          .Doc("accum = momentum * accum + grad; var -= lr * accum, or with use_nesterov "
               "var -= lr * grad + lr * momentum * accum. `var` and `accum` are write handles."),
      "ApplyMomentum", {2, {2, 4}, 3}));
  SLUICE_RETURN_IF_ERROR(RegisterApply<ApplyAdagradOp>(
      ops, kernels,
      OpDefBuilder("ApplyAdagrad")
          .Input("var: Ref(T)")
          .Input("accum: Ref(T)")
          .Input("lr: T")
          .Input("grad: T")
          .Attr(kTypes)
          .SetIsStateful()
          .Doc("accum += grad^2; var -= lr * grad / sqrt(accum). `var` and `accum` are write "
               "handles."),
      "ApplyAdagrad", {2, {2}, 3}));
  SLUICE_RETURN_IF_ERROR(RegisterApply<SparseApplyMomentumOp>(
      ops, kernels,
      OpDefBuilder("SparseApplyMomentum")
          .Input("var: Ref(T)")
          .Input("accum: Ref(T)")
          .Input("lr: T")
          .Input("grad: T")
          .Input("indices: Tindices")
          .Input("momentum: T")
          .Attr(kTypes)
          .Attr("Tindices: {int32, int64} = int64")
          .Attr("use_nesterov: bool = false")
          .SetIsStateful()
          .Doc("ApplyMomentum on the rows `indices` names only, grad[j] updating row "
               "indices[j] (the rows of a repeated index summed first); other rows keep their "
               "values and accumulators."),
      "SparseApplyMomentum", {2, {2, 5}, 3, 4}));
  SLUICE_RETURN_IF_ERROR(RegisterApply<SparseApplyAdagradOp>(
      ops, kernels,
      OpDefBuilder("SparseApplyAdagrad")
          .Input("var: Ref(T)")
          .Input("accum: Ref(T)")
          .Input("lr: T")
          .Input("grad: T")
          .Input("indices: Tindices")
          .Attr(kTypes)
          .Attr("Tindices: {int32, int64} = int64")
          .SetIsStateful()
          .Doc("ApplyAdagrad on the rows `indices` names only, grad[j] updating row indices[j] "
               "(the rows of a repeated index summed first): the dense update of a gradient "
               "that is zero elsewhere."),
      "SparseApplyAdagrad", {2, {2}, 3, 4}));
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("ApplyGradientDescentMatMul")
          .Input("var: Ref(T)")
          .Input("alpha: T")
          .Input("a: T")
          .Input("b: T")
          .Attr(kTypes)
          .Attr("transpose_a: bool = false")
          .Attr("transpose_b: bool = false")
          .SetIsStateful()
          .Doc("var -= alpha * op(a) op(b), in place, as one matrix product accumulating into "
               "the variable (op transposes when transpose_* is set): gradient descent whose "
               "gradient is a MatMul, without materialising the gradient.")
          .SetShapeFn(MatMulUpdateShape)));
  SLUICE_RETURN_IF_ERROR(kernels->Register(
      "ApplyGradientDescentMatMul", kDeviceCpu, DType::kFloat32, [](const Node& node) {
        return MakeApplyKernel<ApplyGradientDescentMatMulOp<float>>(node, 1);
      }));
  SLUICE_RETURN_IF_ERROR(kernels->Register(
      "ApplyGradientDescentMatMul", kDeviceCpu, DType::kFloat64, [](const Node& node) {
        return MakeApplyKernel<ApplyGradientDescentMatMulOp<double>>(node, 1);
      }));
  return RegisterApply<ApplyAdamOp>(
      ops, kernels,
      OpDefBuilder("ApplyAdam")
          .Input("var: Ref(T)")
          .Input("m: Ref(T)")
          .Input("v: Ref(T)")
          .Input("beta1_power: T")
          .Input("beta2_power: T")
          .Input("lr: T")
          .Input("beta1: T")
          .Input("beta2: T")
          .Input("epsilon: T")
          .Input("grad: T")
          .Attr(kTypes)
          .SetIsStateful()
          .Doc("Adam: lr_t = lr * sqrt(1 - beta2_power) / (1 - beta1_power); m += (1 - beta1) "
               "(grad - m); v += (1 - beta2) (grad^2 - v); var -= lr_t * m / (sqrt(v) + "
               "epsilon). `var`, `m` and `v` are write handles."),
      "ApplyAdam", {3, {3, 4, 5, 6, 7, 8}, 9});
}

namespace ops {

const Node* ApplyGradientDescent(const Scope& scope, Output var, Input alpha, Input delta,
                                 SourceLocation loc) {
  return BuildNode(scope, "ApplyGradientDescent", {VariableRef(scope, var, loc), alpha, delta}, {},
                   loc);
}

const Node* ApplyGradientDescentMatMul(const Scope& scope, Output var, Input alpha, Input a,
                                       Input b, bool transpose_a, bool transpose_b,
                                       SourceLocation loc) {
  return BuildNode(
      scope, "ApplyGradientDescentMatMul", {VariableRef(scope, var, loc), alpha, a, b},
      {{"transpose_a", AttrValue(transpose_a)}, {"transpose_b", AttrValue(transpose_b)}}, loc);
}

const Node* ApplyMomentum(const Scope& scope, Output var, Output accum, Input lr, Input grad,
                          Input momentum, bool use_nesterov, SourceLocation loc) {
  return BuildNode(
      scope, "ApplyMomentum",
      {VariableRef(scope, var, loc), VariableRef(scope, accum, loc), lr, grad, momentum},
      {{"use_nesterov", AttrValue(use_nesterov)}}, loc);
}

const Node* ApplyAdagrad(const Scope& scope, Output var, Output accum, Input lr, Input grad,
                         SourceLocation loc) {
  return BuildNode(scope, "ApplyAdagrad",
                   {VariableRef(scope, var, loc), VariableRef(scope, accum, loc), lr, grad}, {},
                   loc);
}

const Node* SparseApplyMomentum(const Scope& scope, Output var, Output accum, Input lr, Input grad,
                                Input indices, Input momentum, bool use_nesterov,
                                SourceLocation loc) {
  return BuildNode(
      scope, "SparseApplyMomentum",
      {VariableRef(scope, var, loc), VariableRef(scope, accum, loc), lr, grad, indices, momentum},
      {{"use_nesterov", AttrValue(use_nesterov)}}, loc);
}

const Node* SparseApplyAdagrad(const Scope& scope, Output var, Output accum, Input lr, Input grad,
                               Input indices, SourceLocation loc) {
  return BuildNode(
      scope, "SparseApplyAdagrad",
      {VariableRef(scope, var, loc), VariableRef(scope, accum, loc), lr, grad, indices}, {}, loc);
}

const Node* ApplyAdam(const Scope& scope, Output var, Output m, Output v, Input beta1_power,
                      Input beta2_power, Input lr, Input beta1, Input beta2, Input epsilon,
                      Input grad, SourceLocation loc) {
  return BuildNode(
      scope, "ApplyAdam",
      {VariableRef(scope, var, loc), VariableRef(scope, m, loc), VariableRef(scope, v, loc),
       beta1_power, beta2_power, lr, beta1, beta2, epsilon, grad},
      {}, loc);
}

}  // namespace ops
}  // namespace sluice
