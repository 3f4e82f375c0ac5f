// OpKernel: the code that runs one node on one device type; OpKernelContext: what a kernel sees
// for one execution (inputs, outputs, the device's Eigen thread pool, per-device resources,
// cancellation); KernelRegistry: kernels by (op, device type, dtype).
//
// A kernel object is created once per node per prepared executor and may run concurrently for
// different steps, so Compute must not mutate the kernel: keep per-step state in the context.
// Kernels return absl::Status; the executor prefixes errors with the node name and op.
//
//   class ReluOp : public OpKernel {
//    public:
//     using OpKernel::OpKernel;
//     absl::Status Compute(OpKernelContext* ctx) override {
//       const Tensor& x = ctx->input(0);
//       SLUICE_ASSIGN_OR_RETURN(Tensor* y, ctx->allocate_output(0, x.shape()));
//       y->flat<float>().device(ctx->eigen_device()) = x.flat<float>().cwiseMax(0.0f);
//       return absl::OkStatus();
//     }
//   };
//   registry->Register("Relu", kDeviceCpu, DType::kFloat32, MakeKernel<ReluOp>);
#ifndef SLUICE_RUNTIME_KERNEL_KERNEL_H_
#define SLUICE_RUNTIME_KERNEL_KERNEL_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/tensor.h"
#include "graph/graph.h"
#include "runtime/kernel/cancellation.h"
#include "runtime/kernel/resource_mgr.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace sluice {

inline constexpr char kDeviceCpu[] = "CPU";

class Rendezvous;

class OpKernelContext {
 public:
  struct Params {
    const Node* node = nullptr;
    std::vector<Tensor> inputs;
    const Eigen::ThreadPoolDevice* eigen_device = nullptr;
    ResourceMgr* resources = nullptr;
    CancellationManager* cancellation = nullptr;  // May be null: the step cannot be cancelled.
    Rendezvous* rendezvous = nullptr;             // For Send/Recv; may be null.
    int64_t step_id = 0;
    MemoryBudget* budget = nullptr;  // Outputs are charged to it; may be null. Borrowed.
  };
  explicit OpKernelContext(Params params);

  const Node& node() const { return *params_.node; }
  int num_inputs() const { return static_cast<int>(params_.inputs.size()); }
  const Tensor& input(int i) const { return params_.inputs[i]; }
  // Moves input i out (lets a kernel reuse or forward a buffer it alone holds).
  Tensor release_input(int i) { return std::move(params_.inputs[i]); }

  // Allocates output i with the node's output dtype; the returned pointer stays valid for the
  // rest of Compute.
  absl::StatusOr<Tensor*> allocate_output(int i, const TensorShape& shape);
  // Sets output i; its dtype must match the node's output dtype (checked by the executor).
  void set_output(int i, Tensor tensor) { outputs_[i] = std::move(tensor); }
  std::vector<Tensor>& outputs() { return outputs_; }

  const Eigen::ThreadPoolDevice& eigen_device() const { return *params_.eigen_device; }
  ResourceMgr* resources() const { return params_.resources; }
  CancellationManager* cancellation() const { return params_.cancellation; }
  Rendezvous* rendezvous() const { return params_.rendezvous; }
  int64_t step_id() const { return params_.step_id; }

  // For async kernels: the status reported with the done callback.
  void SetStatus(absl::Status s) { status_ = std::move(s); }
  const absl::Status& status() const { return status_; }

 private:
  Params params_;
  std::vector<Tensor> outputs_;
  absl::Status status_;
};

class AsyncOpKernel;

// A synchronous kernel: Compute runs to completion on the calling thread.
class OpKernel {
 public:
  explicit OpKernel(const Node& node) : node_(&node) {}
  virtual ~OpKernel() = default;

  virtual absl::Status Compute(OpKernelContext* ctx) = 0;
  // Cheap kernels run inline on the executor thread that made them ready.
  virtual bool IsExpensive() const { return true; }
  // Whether Compute may wait for another party (a _Send, for the receiver's credit). Such a
  // kernel never runs on a thread the executor does not drive (a data-plane reader), even when
  // it is cheap: blocked there, it could deadlock with a peer blocked the same way.
  virtual bool MayBlock() const { return false; }
  // This kernel as an AsyncOpKernel, or null for a synchronous one.
  virtual AsyncOpKernel* AsAsync() { return nullptr; }

  const Node& node() const { return *node_; }
  // OK, or why the constructor could not read what it needs (an attribute): the registry then
  // refuses the kernel instead of running it with a made-up value.
  const absl::Status& construction_status() const { return construction_status_; }

 protected:
  // Attribute `name` of the node; a missing or mistyped one is recorded in
  // construction_status() (naming the node) and T() returned.
  template <typename T>
  T Attr(absl::string_view name) {
    absl::StatusOr<T> value = node_->GetAttr<T>(name);
    if (value.ok()) return *std::move(value);
    if (construction_status_.ok()) {
      construction_status_ =
          absl::Status(value.status().code(),
                       absl::StrCat(node_->DebugName(), ": kernel cannot read its attribute '",
                                    name, "': ", value.status().message()));
    }
    return T();
  }

 private:
  const Node* node_;
  absl::Status construction_status_;
};

// A kernel that may finish later, on another thread (a receive waiting for its sender). It sets
// the context's outputs or status, then calls `done` exactly once. Compute runs it and waits, so
// every kernel can be run synchronously where nothing else needs the thread.
class AsyncOpKernel : public OpKernel {
 public:
  using OpKernel::OpKernel;
  virtual void ComputeAsync(OpKernelContext* ctx, std::function<void()> done) = 0;
  absl::Status Compute(OpKernelContext* ctx) final;
  AsyncOpKernel* AsAsync() final { return this; }
};

// Creates the kernel for a node; reads and validates attributes.
using KernelFactory = std::function<absl::StatusOr<std::unique_ptr<OpKernel>>(const Node&)>;

template <typename K>
absl::StatusOr<std::unique_ptr<OpKernel>> MakeKernel(const Node& node) {
  return std::unique_ptr<OpKernel>(new K(node));
}

// The dtype a node's kernel is chosen by: its "T" attribute, else its "dtype" attribute, else
// kInvalid.
DType KernelDTypeOf(const Node& node);

class KernelRegistry {
 public:
  static KernelRegistry* Global();

  // `dtype` kInvalid registers a kernel for every dtype of the op.
  absl::Status Register(absl::string_view op, absl::string_view device_type, DType dtype,
                        KernelFactory factory);
  // Creates the kernel for `node` on `device_type`; NotFound naming the node, op, device type
  // and dtype when none is registered.
  absl::StatusOr<std::unique_ptr<OpKernel>> CreateKernel(const Node& node,
                                                         absl::string_view device_type) const;
  bool HasKernel(absl::string_view op, absl::string_view device_type, DType dtype) const;

 private:
  using Key = std::tuple<std::string, std::string, DType>;
  mutable absl::Mutex mu_;
  std::map<Key, KernelFactory> factories_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice

#endif  // SLUICE_RUNTIME_KERNEL_KERNEL_H_
