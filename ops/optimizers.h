// Optimizers: build the training op of a model. Minimize(scope, loss, var_list) adds the
// gradients of `loss` with respect to each variable (ops/gradients.h) and one update op per
// variable (ops/training_ops.h), and returns a NoOp that runs them all: run it as a target once
// per step.
//   GradientDescentOptimizer(lr)                        var -= lr * g (when g is a MatMul that
//                                                       nothing else reads, fused into one GEMM
//                                                       that accumulates into var; when g is
//                                                       the gradient of rows gathered from var,
//                                                       a ScatterSub of only those rows)
//   MomentumOptimizer(lr, momentum, use_nesterov)       slot "<var>/<name>" (name: "Momentum")
//   AdagradOptimizer(lr, initial_accumulator_value)     slot "<var>/<name>" (name: "Adagrad")
//   AdamOptimizer(lr, beta1, beta2, epsilon)            slots "<var>/<name>_m", "<var>/<name>_v"
//                                                       and "<name>/beta1_power", "<name>/
//                                                       beta2_power" (name: "Adam")
// Slot variables are variables like any other (saved by checkpoints, created zero or with the
// initial accumulator value) built with ops::VariableWithInitNamed, so
// ops::GlobalVariablesInitializer built after Minimize initialises them too.
//
// Variables are the outputs of Variable nodes with fully defined shapes. Variables that the loss
// does not depend on get no update; it is an error when none does. Each update waits (control
// edges) for the other readers of its variable that the step runs anyway, so the update can
// write the buffer in place instead of copying it. The nodes go under `scope`: gradients in
// "gradients/...", updates in "<name>/...", and the returned NoOp is named like any node built
// with `scope` (pass scope.WithOpName("train") for a fixed name).
// Updates, slots and Adam's beta powers are built on the device their variable requests (none:
// none, so the placer puts them with the variable), whatever device `scope` asks for, as TF1's
// colocate_with does: an update must run where its variable lives, e.g. on a parameter server.
// An optimizer object is used from one thread while building, like Scope.
//
//   ops::AdamOptimizer opt(0.001);
//   SLUICE_ASSIGN_OR_RETURN(const Node* train, opt.Minimize(s.WithOpName("train"), loss, {w1,
//   b1})); const Node* init = ops::GlobalVariablesInitializer(s.WithOpName("init"));
//   session->Run({}, {}, {"init"}, nullptr);
//   for (...) session->Run({{"x", batch}, {"y", labels}}, {"loss"}, {"train"}, &out);
#ifndef SLUICE_OPS_OPTIMIZERS_H_
#define SLUICE_OPS_OPTIMIZERS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "graph/scope.h"

namespace sluice {
namespace ops {

// `scope` with the device `var`'s Variable node requests (an empty request included).
Scope OnDeviceOf(const Scope& scope, const Output& var);

class Optimizer {
 public:
  virtual ~Optimizer() = default;

  // The gradient of `loss` for each variable (invalid where the loss does not depend on it).
  absl::StatusOr<std::vector<Output>> ComputeGradients(const Scope& scope, Output loss,
                                                       const std::vector<Output>& var_list);
  // One update per (gradient, variable) pair with a valid gradient, grouped behind a NoOp.
  absl::StatusOr<const Node*> ApplyGradients(
      const Scope& scope, const std::vector<std::pair<Output, Output>>& grads_and_vars);
  absl::StatusOr<const Node*> Minimize(const Scope& scope, Output loss,
                                       const std::vector<Output>& var_list);

  const std::string& name() const { return name_; }
  // Every variable this optimizer created (slots and others), in creation order.
  const std::vector<Output>& created_variables() const { return created_; }

 protected:
  explicit Optimizer(std::string name) : name_(std::move(name)) {}

  // Called once per ApplyGradients before any update: creates non-slot variables.
  virtual absl::Status Prepare(const Scope& scope, DType dtype) { return absl::OkStatus(); }
  // Builds the update of `var` by `grad` with `update_scope`, which carries the control edges
  // described above; slots are created with `slot_scope`, which has none.
  virtual const Node* ApplyDense(const Scope& slot_scope, const Scope& update_scope,
                                 const Output& grad, const Output& var) = 0;
  // Called with every update node; returns the nodes the training op must also wait for.
  virtual std::vector<const Node*> Finish(const Scope& scope,
                                          const std::vector<const Node*>& updates) {
    return updates;
  }

  // A variable named "<var's name>/<slot>" of var's shape and dtype, initialised to `value`.
  Output CreateSlot(const Scope& scope, const Output& var, const std::string& slot, double value);
  // A scalar variable named "<name()>/<suffix>" initialised to `value`.
  Output CreateNonSlot(const Scope& scope, const std::string& suffix, DType dtype, double value);

 private:
  std::string name_;
  std::vector<Output> created_;
};

class GradientDescentOptimizer : public Optimizer {
 public:
  explicit GradientDescentOptimizer(double learning_rate, std::string name = "GradientDescent")
      : Optimizer(std::move(name)), lr_(learning_rate) {}

 protected:
  const Node* ApplyDense(const Scope& slot_scope, const Scope& update_scope, const Output& grad,
                         const Output& var) override;

 private:
  const double lr_;
};

class MomentumOptimizer : public Optimizer {
 public:
  MomentumOptimizer(double learning_rate, double momentum, bool use_nesterov = false,
                    std::string name = "Momentum")
      : Optimizer(std::move(name)),
        lr_(learning_rate),
        momentum_(momentum),
        use_nesterov_(use_nesterov) {}

 protected:
  const Node* ApplyDense(const Scope& slot_scope, const Scope& update_scope, const Output& grad,
                         const Output& var) override;

 private:
  const double lr_, momentum_;
  const bool use_nesterov_;
};

class AdagradOptimizer : public Optimizer {
 public:
  explicit AdagradOptimizer(double learning_rate, double initial_accumulator_value = 0.1,
                            std::string name = "Adagrad")
      : Optimizer(std::move(name)), lr_(learning_rate), initial_(initial_accumulator_value) {}

 protected:
  const Node* ApplyDense(const Scope& slot_scope, const Scope& update_scope, const Output& grad,
                         const Output& var) override;

 private:
  const double lr_, initial_;
};

class AdamOptimizer : public Optimizer {
 public:
  explicit AdamOptimizer(double learning_rate = 0.001, double beta1 = 0.9, double beta2 = 0.999,
                         double epsilon = 1e-8, std::string name = "Adam")
      : Optimizer(std::move(name)),
        lr_(learning_rate),
        beta1_(beta1),
        beta2_(beta2),
        epsilon_(epsilon) {}

 protected:
  absl::Status Prepare(const Scope& scope, DType dtype) override;
  const Node* ApplyDense(const Scope& slot_scope, const Scope& update_scope, const Output& grad,
                         const Output& var) override;
  // Advances beta1_power and beta2_power after every update.
  std::vector<const Node*> Finish(const Scope& scope,
                                  const std::vector<const Node*>& updates) override;

 private:
  const double lr_, beta1_, beta2_, epsilon_;
  Output beta1_power_, beta2_power_;
};

}  // namespace ops
}  // namespace sluice

#endif  // SLUICE_OPS_OPTIMIZERS_H_
