#include "graph/gradient_registry.h"

#include "absl/strings/str_cat.h"

namespace sluice {

GradientRegistry* GradientRegistry::Global() {
  static GradientRegistry* registry = new GradientRegistry();
  return registry;
}

absl::Status GradientRegistry::Register(absl::string_view op, GradFn fn) {
  if (!fn) {
    return absl::InvalidArgumentError(
        absl::StrCat("empty gradient function for op '", op, "' (use RegisterNoGradient)"));
  }
  absl::MutexLock lock(&mu_);
  if (!fns_.emplace(std::string(op), std::move(fn)).second) {
    return absl::AlreadyExistsError(
        absl::StrCat("a gradient is already registered for op '", op, "'"));
  }
  return absl::OkStatus();
}

absl::Status GradientRegistry::RegisterNoGradient(absl::string_view op) {
  absl::MutexLock lock(&mu_);
  if (!fns_.emplace(std::string(op), GradFn()).second) {
    return absl::AlreadyExistsError(
        absl::StrCat("a gradient is already registered for op '", op, "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<const GradFn*> GradientRegistry::LookUp(absl::string_view op) const {
  absl::MutexLock lock(&mu_);
  auto it = fns_.find(op);
  if (it == fns_.end()) {
    return absl::NotFoundError(absl::StrCat("no gradient is registered for op '", op, "'"));
  }
  return it->second ? &it->second : nullptr;
}

bool GradientRegistry::IsRegistered(absl::string_view op) const {
  absl::MutexLock lock(&mu_);
  return fns_.find(op) != fns_.end();
}

}  // namespace sluice
