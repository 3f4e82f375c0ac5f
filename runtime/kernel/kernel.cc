#include "runtime/kernel/kernel.h"

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"

namespace sluice {

absl::Status AsyncOpKernel::Compute(OpKernelContext* ctx) {
  absl::Notification finished;
  ComputeAsync(ctx, [&finished] { finished.Notify(); });
  finished.WaitForNotification();
  return ctx->status();
}

OpKernelContext::OpKernelContext(Params params)
    : params_(std::move(params)), outputs_(params_.node->num_outputs()) {}

absl::StatusOr<Tensor*> OpKernelContext::allocate_output(int i, const TensorShape& shape) {
  if (!shape.IsFullyDefined()) {
    return absl::InvalidArgumentError(
        absl::StrCat("output ", i, " shape ", shape.DebugString(), " is not fully defined"));
  }
  for (int64_t d : shape.dims()) {
    if (d < 0) return absl::InvalidArgumentError("negative output dimension");
  }
  absl::StatusOr<Tensor> t = Tensor::Allocate(params_.node->output_type(i), shape, params_.budget);
  if (!t.ok()) {
    return absl::Status(t.status().code(), absl::StrCat("output ", i, ": ", t.status().message()));
  }
  outputs_[i] = *std::move(t);
  return &outputs_[i];
}

DType KernelDTypeOf(const Node& node) {
  for (const char* attr : {"T", "dtype"}) {
    auto it = node.attrs().find(attr);
    if (it != node.attrs().end()) {
      if (const DType* d = it->second.get_if<DType>()) return *d;
    }
  }
  return DType::kInvalid;
}

KernelRegistry* KernelRegistry::Global() {
  static KernelRegistry* registry = new KernelRegistry;
  return registry;
}

absl::Status KernelRegistry::Register(absl::string_view op, absl::string_view device_type,
                                      DType dtype, KernelFactory factory) {
  absl::MutexLock lock(&mu_);
  Key key{std::string(op), std::string(device_type), dtype};
  if (!factories_.emplace(key, std::move(factory)).second) {
    return absl::AlreadyExistsError(absl::StrCat("kernel for ", op, " on ", device_type, " (",
                                                 DTypeName(dtype), ") is already registered"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<OpKernel>> KernelRegistry::CreateKernel(
    const Node& node, absl::string_view device_type) const {
  DType dtype = KernelDTypeOf(node);
  KernelFactory factory;
  {
    absl::MutexLock lock(&mu_);
    auto it = factories_.find(Key{node.op(), std::string(device_type), dtype});
    if (it == factories_.end()) {
      it = factories_.find(Key{node.op(), std::string(device_type), DType::kInvalid});
    }
    if (it == factories_.end()) {
      return absl::NotFoundError(absl::StrCat(node.DebugName(), ": no ", device_type,
                                              " kernel registered for dtype ", DTypeName(dtype)));
    }
    factory = it->second;
  }
  absl::StatusOr<std::unique_ptr<OpKernel>> kernel = factory(node);
  if (kernel.ok() && !(*kernel)->construction_status().ok()) {
    return (*kernel)->construction_status();
  }
  return kernel;
}

bool KernelRegistry::HasKernel(absl::string_view op, absl::string_view device_type,
                               DType dtype) const {
  absl::MutexLock lock(&mu_);
  return factories_.count(Key{std::string(op), std::string(device_type), dtype}) ||
         factories_.count(Key{std::string(op), std::string(device_type), DType::kInvalid});
}

}  // namespace sluice
