#include "graph/scope.h"

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace sluice {
namespace {

// `value` converted to `dtype` (for literal constants such as the 2 in Mul(x, 2)).
Tensor ConvertLiteral(const Tensor& value, DType dtype) {
  Tensor out(dtype, value.shape());
  SLUICE_SWITCH_DTYPE(value.dtype(), From,
                      {
                        SLUICE_SWITCH_DTYPE(dtype, To,
                                            {
                                              for (int64_t i = 0; i < value.num_elements(); ++i) {
                                                out.data<To>()[i] =
                                                    static_cast<To>(value.data<From>()[i]);
                                              }
                                            },
                                            {});
                      },
                      {});
  return out;
}

}  // namespace

std::string SourceLocation::ToString() const { return absl::StrCat(file, ":", line); }

std::string Output::name() const { return Endpoint{node_, index_}.DebugString(); }

Scope Scope::NewRootScope(const OpRegistry* registry) {
  auto state = std::make_shared<State>();
  state->graph = std::make_shared<Graph>(registry);
  return Scope(std::move(state));
}

Scope Scope::WithOpName(absl::string_view name) const {
  Scope s = *this;
  s.op_name_ = std::string(name);
  return s;
}

Scope Scope::NewSubScope(absl::string_view name) const {
  Scope s = *this;
  s.op_name_.clear();
  s.name_prefix_ = name_prefix_.empty() ? std::string(name) : absl::StrCat(name_prefix_, "/", name);
  return s;
}

Scope Scope::WithDevice(absl::string_view device) const {
  Scope s = *this;
  s.device_ = std::string(device);
  return s;
}

Scope Scope::WithControlDependencies(const std::vector<Output>& deps) const {
  Scope s = *this;
  for (const Output& d : deps) {
    if (d.valid()) s.control_deps_.push_back(d.node());
  }
  return s;
}

Scope Scope::WithControlDependencies(const std::vector<const Node*>& deps) const {
  Scope s = *this;
  for (const Node* d : deps) {
    if (d != nullptr) s.control_deps_.push_back(d);
  }
  return s;
}

void Scope::UpdateStatus(const absl::Status& status) const {
  if (state_->status.ok() && !status.ok()) state_->status = status;
}

absl::StatusOr<std::shared_ptr<const Graph>> Scope::Finalize() const {
  SLUICE_RETURN_IF_ERROR(state_->status);
  if (!state_->graph->finalized()) SLUICE_RETURN_IF_ERROR(state_->graph->Finalize());
  return std::shared_ptr<const Graph>(state_->graph);
}

std::string Scope::NodeNameFor(absl::string_view op) const {
  if (!op_name_.empty()) {
    return name_prefix_.empty() ? op_name_ : absl::StrCat(name_prefix_, "/", op_name_);
  }
  std::string base = name_prefix_.empty() ? std::string(op) : absl::StrCat(name_prefix_, "/", op);
  return state_->graph->UniqueName(base);
}

const Node* Scope::AddNode(absl::string_view op, const std::vector<Input>& inputs, AttrMap attrs,
                           SourceLocation loc) const {
  if (!ok()) return nullptr;
  // Literal constants take the dtype of the first non-literal input bound to the same type
  // attribute, so Mul(x_float64, 2.0f) works as a user expects.
  absl::StatusOr<const OpDef*> def = state_->graph->registry()->LookUp(op);
  std::vector<Endpoint> endpoints;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Input& in = inputs[i];
    if (!in.is_constant()) {
      if (!in.output().valid()) return nullptr;  // An earlier error was recorded already.
      endpoints.push_back(in.output().endpoint());
      continue;
    }
    Tensor value = in.value();
    if (def.ok() && (*def)->inputs.size() == inputs.size()) {
      const std::string& type_attr = (*def)->inputs[i].type_attr;
      DType want = DType::kInvalid;
      if (!type_attr.empty()) {
        if (auto it = attrs.find(type_attr); it != attrs.end() && it->second.get_if<DType>()) {
          want = *it->second.get_if<DType>();
        }
        for (size_t j = 0; j < inputs.size() && want == DType::kInvalid; ++j) {
          if (!inputs[j].is_constant() && (*def)->inputs[j].type_attr == type_attr) {
            want = inputs[j].output().dtype();
          }
        }
      } else if ((*def)->inputs[i].fixed_type != DType::kInvalid) {
        want = (*def)->inputs[i].fixed_type;
      }
      if (want != DType::kInvalid && want != value.dtype()) value = ConvertLiteral(value, want);
    }
    NodeSpec cspec;
    cspec.name = state_->graph->UniqueName(
        name_prefix_.empty() ? "Const" : absl::StrCat(name_prefix_, "/Const"));
    cspec.op = "Const";
    cspec.attrs = {{"value", AttrValue(value)}, {"dtype", AttrValue(value.dtype())}};
    cspec.device = device_;
    cspec.source_location = loc.ToString();
    absl::StatusOr<Node*> c = state_->graph->AddNode(std::move(cspec));
    if (!c.ok()) {
      UpdateStatus(c.status());
      return nullptr;
    }
    endpoints.push_back(Endpoint{*c, 0});
  }
  NodeSpec spec;
  spec.name = NodeNameFor(op);
  spec.op = std::string(op);
  spec.inputs = std::move(endpoints);
  spec.control_inputs = control_deps_;
  spec.attrs = std::move(attrs);
  spec.device = device_;
  spec.source_location = loc.ToString();
  absl::StatusOr<Node*> node = state_->graph->AddNode(std::move(spec));
  if (!node.ok()) {
    UpdateStatus(node.status());
    return nullptr;
  }
  return *node;
}

std::vector<Output> AllOutputs(const Node* node) {
  std::vector<Output> out;
  if (node == nullptr) return out;
  for (int i = 0; i < node->num_outputs(); ++i) out.emplace_back(node, i);
  return out;
}

}  // namespace sluice
