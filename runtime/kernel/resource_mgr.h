// ResourceMgr: state that outlives a step on one device, such as the values of variables.
// Variables are looked up by name; each has its own lock.
// Thread-safe.
//
//   std::shared_ptr<Variable> v = resources->LookupOrCreateVariable("w1");
//   absl::MutexLock lock(&v->mu);
//   if (!v->initialized) ...
#ifndef SLUICE_RUNTIME_KERNEL_RESOURCE_MGR_H_
#define SLUICE_RUNTIME_KERNEL_RESOURCE_MGR_H_

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "core/tensor.h"

namespace sluice {

// One variable's value. Readers copy `value` (sharing its buffer); writers replace the buffer
// when a reader still holds it (copy-on-write), so a value read in a step never changes under
// the reader.
struct Variable {
  absl::Mutex mu;
  Tensor value ABSL_GUARDED_BY(mu);
  bool initialized ABSL_GUARDED_BY(mu) = false;
  // How many times it was initialised (its initializer ran, or a checkpoint restored it): state
  // kept beside the value, such as a parameter server's clocks, starts over when this changes.
  int64_t initializations ABSL_GUARDED_BY(mu) = 0;
};

// Other state of a device that outlives a step (a parameter server's clocks), kept by name:
// derive from Resource.
class Resource {
 public:
  virtual ~Resource() = default;
};

class ResourceMgr {
 public:
  std::shared_ptr<Variable> LookupOrCreateVariable(const std::string& name);
  // The T named `name`, created empty on first use; nullptr when a resource of another type
  // holds the name.
  template <typename T>
  std::shared_ptr<T> LookupOrCreate(const std::string& name) {
    absl::MutexLock lock(&mu_);
    std::shared_ptr<Resource>& r = resources_[name];
    if (r == nullptr) r = std::make_shared<T>();
    return std::dynamic_pointer_cast<T>(r);
  }
  // nullptr when no variable of that name exists.
  std::shared_ptr<Variable> LookupVariable(const std::string& name) const;
  std::vector<std::string> VariableNames() const;
  // The resources (not variables) whose names start with `prefix`, by name.
  std::vector<std::pair<std::string, std::shared_ptr<Resource>>> ResourcesWithPrefix(
      const std::string& prefix) const;
  // Makes `to` hold this one's resources other than variables (the same objects, shared): for
  // a session that takes over from another, over a grown graph.
  void ShareResourcesWith(ResourceMgr& to) const;
  void Clear();

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Variable>> variables_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<Resource>> resources_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice

#endif  // SLUICE_RUNTIME_KERNEL_RESOURCE_MGR_H_
