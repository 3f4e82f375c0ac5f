#include "runtime/kernel/resource_mgr.h"

namespace sluice {

std::shared_ptr<Variable> ResourceMgr::LookupOrCreateVariable(const std::string& name) {
  absl::MutexLock lock(&mu_);
  std::shared_ptr<Variable>& v = variables_[name];
  if (v == nullptr) v = std::make_shared<Variable>();
  return v;
}

std::shared_ptr<Variable> ResourceMgr::LookupVariable(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = variables_.find(name);
  return it == variables_.end() ? nullptr : it->second;
}

std::vector<std::string> ResourceMgr::VariableNames() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> names;
  for (const auto& [name, v] : variables_) names.push_back(name);
  return names;
}

std::vector<std::pair<std::string, std::shared_ptr<Resource>>> ResourceMgr::ResourcesWithPrefix(
    const std::string& prefix) const {
  absl::MutexLock lock(&mu_);
  std::vector<std::pair<std::string, std::shared_ptr<Resource>>> out;
  for (auto it = resources_.lower_bound(prefix);
       it != resources_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    out.emplace_back(it->first, it->second);
  }
  return out;
}

void ResourceMgr::ShareResourcesWith(ResourceMgr& to) const {
  if (&to == this) return;
  std::map<std::string, std::shared_ptr<Resource>> mine;
  {
    absl::MutexLock lock(&mu_);
    mine = resources_;
  }
  absl::MutexLock lock(&to.mu_);
  for (auto& [name, r] : mine) to.resources_[name] = std::move(r);
}

void ResourceMgr::Clear() {
  absl::MutexLock lock(&mu_);
  variables_.clear();
  resources_.clear();
}

}  // namespace sluice
