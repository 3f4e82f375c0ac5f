#include "graph/graph.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "core/status.h"
#include "graph/shape_inference.h"

namespace sluice {
namespace {

bool IsValidNodeName(absl::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!(absl::ascii_isalnum(c) || c == '_' || c == '-' || c == '.' || c == '/')) return false;
  }
  return name.front() != '/' && name.back() != '/';
}

bool AttrHasType(const AttrValue& v, AttrType type) { return v.type() == type; }

}  // namespace

absl::Status NameTooLong(absl::string_view name) {
  return absl::InvalidArgumentError(absl::StrCat("node name '", name.substr(0, 64), "...' is ",
                                                 name.size(), " bytes long, over the limit of ",
                                                 kMaxNodeNameBytes));
}

namespace {

// Resolves the attributes an op's arguments need (type and list-length attributes), checks the
// input dtypes, and computes the output dtypes.
class SignatureBinder {
 public:
  SignatureBinder(const OpDef& def, AttrMap* attrs) : def_(def), attrs_(attrs) {}

  absl::Status BindInputs(const std::vector<Endpoint>& inputs) {
    // Lengths of list arguments: from attributes when set, else inferred (one unset list only).
    int fixed_count = 0, unset_lists = 0;
    for (const ArgDef& arg : def_.inputs) {
      if (arg.number_attr.empty()) {
        ++fixed_count;
      } else if (auto it = attrs_->find(arg.number_attr); it != attrs_->end()) {
        const int64_t* n = it->second.get_if<int64_t>();
        if (n == nullptr) return BadAttrType(arg.number_attr, AttrType::kInt, it->second);
        fixed_count += static_cast<int>(*n);
      } else {
        ++unset_lists;
      }
    }
    if (unset_lists > 1) {
      return absl::InvalidArgumentError("cannot infer the lengths of several list inputs");
    }
    int expected = fixed_count;
    if (unset_lists == 1) {
      int64_t n = static_cast<int64_t>(inputs.size()) - fixed_count;
      for (const ArgDef& arg : def_.inputs) {
        if (!arg.number_attr.empty() && !attrs_->count(arg.number_attr)) {
          (*attrs_)[arg.number_attr] = AttrValue(n < 0 ? int64_t{0} : n);
        }
      }
      expected = std::max<int>(fixed_count, inputs.size());
    }
    if (static_cast<int>(inputs.size()) != expected) {
      return absl::InvalidArgumentError(
          absl::StrCat("expects ", expected, " inputs, got ", inputs.size()));
    }
    size_t pos = 0;
    for (const ArgDef& arg : def_.inputs) {
      int64_t count = 1;
      if (!arg.number_attr.empty()) count = *(*attrs_)[arg.number_attr].get_if<int64_t>();
      for (int64_t k = 0; k < count; ++k, ++pos) {
        const Endpoint& in = inputs[pos];
        DType actual = in.node->output_type(in.index);
        SLUICE_RETURN_IF_ERROR(BindType(
            arg, actual,
            absl::StrCat("input ", pos, " ('", arg.name, "' from ", in.DebugString(), ")")));
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<DType>> OutputTypes() {
    std::vector<DType> types;
    for (const ArgDef& arg : def_.outputs) {
      DType dt = arg.fixed_type;
      if (!arg.type_attr.empty()) {
        auto it = attrs_->find(arg.type_attr);
        if (it == attrs_->end()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "missing attribute '", arg.type_attr, "' (the dtype of output '", arg.name, "')"));
        }
        dt = *it->second.get_if<DType>();
      }
      int64_t count = 1;
      if (!arg.number_attr.empty()) {
        auto it = attrs_->find(arg.number_attr);
        if (it == attrs_->end()) {
          return absl::InvalidArgumentError(
              absl::StrCat("missing attribute '", arg.number_attr, "'"));
        }
        count = *it->second.get_if<int64_t>();
      }
      for (int64_t k = 0; k < count; ++k) types.push_back(dt);
    }
    return types;
  }

 private:
  absl::Status BindType(const ArgDef& arg, DType actual, const std::string& what) {
    if (arg.type_attr.empty()) {
      if (actual != arg.fixed_type) {
        return absl::InvalidArgumentError(absl::StrCat(what, " has dtype ", DTypeName(actual),
                                                       " but must be ", DTypeName(arg.fixed_type)));
      }
      return absl::OkStatus();
    }
    auto it = attrs_->find(arg.type_attr);
    if (it == attrs_->end()) {
      (*attrs_)[arg.type_attr] = AttrValue(actual);
      return absl::OkStatus();
    }
    const DType* bound = it->second.get_if<DType>();
    if (bound == nullptr) return BadAttrType(arg.type_attr, AttrType::kType, it->second);
    if (*bound != actual) {
      return absl::InvalidArgumentError(absl::StrCat(what, " has dtype ", DTypeName(actual),
                                                     " but attribute ", arg.type_attr, " is ",
                                                     DTypeName(*bound)));
    }
    return absl::OkStatus();
  }

  static absl::Status BadAttrType(const std::string& name, AttrType want, const AttrValue& got) {
    return absl::InvalidArgumentError(absl::StrCat("attribute '", name, "' must be a ",
                                                   AttrTypeName(want), ", got a ",
                                                   AttrTypeName(got.type())));
  }

  const OpDef& def_;
  AttrMap* attrs_;
};

// Checks that every given attribute is declared and of the declared kind.
absl::Status CheckGivenAttrs(const OpDef& def, const AttrMap* attrs) {
  for (const auto& [name, value] : *attrs) {
    const AttrDef* ad = def.FindAttr(name);
    if (ad == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown attribute '", name, "'"));
    }
    if (!AttrHasType(value, ad->type)) {
      return absl::InvalidArgumentError(
          absl::StrCat("attribute '", name, "' must be a ", AttrTypeName(ad->type), ", got a ",
                       AttrTypeName(value.type()), " (", value.DebugString(), ")"));
    }
  }
  return absl::OkStatus();
}

// After the signature is bound: fills defaults, then checks required attributes, allowed dtypes
// and minimums.
absl::Status CompleteAttrs(const OpDef& def, AttrMap* attrs) {
  SLUICE_RETURN_IF_ERROR(CheckGivenAttrs(def, attrs));
  for (const AttrDef& ad : def.attrs) {
    auto it = attrs->find(ad.name);
    if (it == attrs->end()) {
      if (ad.default_value.has_value()) {
        (*attrs)[ad.name] = *ad.default_value;
        continue;
      }
      return absl::InvalidArgumentError(absl::StrCat("missing attribute '", ad.name, "'"));
    }
    if (!ad.allowed_types.empty()) {
      DType d = *it->second.get_if<DType>();
      if (std::find(ad.allowed_types.begin(), ad.allowed_types.end(), d) ==
          ad.allowed_types.end()) {
        std::vector<std::string> names;
        for (DType a : ad.allowed_types) names.emplace_back(DTypeName(a));
        return absl::InvalidArgumentError(absl::StrCat("attribute ", ad.name, " is ", DTypeName(d),
                                                       ", which is not one of {",
                                                       absl::StrJoin(names, ", "), "}"));
      }
    }
    if (ad.minimum.has_value() && *it->second.get_if<int64_t>() < *ad.minimum) {
      return absl::InvalidArgumentError(absl::StrCat("attribute ", ad.name, " is ",
                                                     *it->second.get_if<int64_t>(),
                                                     ", below its minimum ", *ad.minimum));
    }
  }
  return absl::OkStatus();
}

}  // namespace

const ArgDef* Node::input_arg(int index) const {
  int pos = 0;
  for (const ArgDef& arg : op_def_->inputs) {
    int64_t count = 1;
    if (!arg.number_attr.empty()) count = GetAttr<int64_t>(arg.number_attr).value_or(1);
    if (index >= pos && index < pos + count) return &arg;
    pos += static_cast<int>(count);
  }
  return nullptr;
}

bool Node::IsRefInput(int index) const {
  const ArgDef* arg = input_arg(index);
  return arg != nullptr && arg->is_ref;
}

absl::Status CheckFeed(const std::vector<Endpoint>& feeds, size_t i, DType dtype,
                       const TensorShape& shape) {
  const Endpoint& f = feeds[i];
  const DType want = f.node->output_type(f.index);
  if (dtype != want) {
    return absl::InvalidArgumentError(absl::StrCat("feed for '", f.DebugString(), "' has dtype ",
                                                   DTypeName(dtype), " but the graph expects ",
                                                   DTypeName(want)));
  }
  if (!shape.IsCompatibleWith(f.node->output_shape(f.index))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "feed for '", f.DebugString(), "' has shape ", shape.DebugString(),
        ", incompatible with the graph's ", f.node->output_shape(f.index).DebugString()));
  }
  for (size_t j = 0; j < i; ++j) {
    if (feeds[j] == f) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", f.DebugString(), "' is fed more than once"));
    }
  }
  return absl::OkStatus();
}

std::string Endpoint::DebugString() const {
  return absl::StrCat(node ? node->name() : "<null>", ":", index);
}

std::string Node::DebugName() const { return absl::StrCat("node '", name_, "' (", op(), ")"); }

Graph::Graph(const OpRegistry* registry) : registry_(registry) {}

absl::StatusOr<Node*> Graph::AddNode(NodeSpec spec) {
  auto context = [&spec] {
    std::string s = absl::StrCat("node '", spec.name, "' (", spec.op, ")");
    if (!spec.source_location.empty()) absl::StrAppend(&s, " built at ", spec.source_location);
    return s;
  };
  if (finalized_) {
    return absl::FailedPreconditionError(
        absl::StrCat(context(), ": the graph is finalized; no node can be added"));
  }
  // Before anything quotes it: names travel in rendezvous keys and error messages.
  if (spec.name.size() > kMaxNodeNameBytes) return NameTooLong(spec.name);
  if (!IsValidNodeName(spec.name)) {
    return absl::InvalidArgumentError(absl::StrCat(context(), ": invalid node name"));
  }
  if (by_name_.contains(spec.name)) {
    return absl::AlreadyExistsError(
        absl::StrCat(context(), ": duplicate node name '", spec.name, "'"));
  }
  absl::StatusOr<const OpDef*> def = registry_->LookUp(spec.op);
  if (!def.ok()) return AnnotateStatus(def.status(), context());
  for (const Endpoint& in : spec.inputs) {
    if (in.node == nullptr || in.index < 0 || in.index >= in.node->num_outputs()) {
      return absl::InvalidArgumentError(
          absl::StrCat(context(), ": input ", in.DebugString(), " does not exist"));
    }
  }
  auto node = std::make_unique<Node>();
  node->op_def_ = *def;
  node->attrs_ = std::move(spec.attrs);
  SLUICE_RETURN_IF_ERROR(AnnotateStatus(CheckGivenAttrs(**def, &node->attrs_), context()));
  SignatureBinder binder(**def, &node->attrs_);
  SLUICE_RETURN_IF_ERROR(AnnotateStatus(binder.BindInputs(spec.inputs), context()));
  SLUICE_RETURN_IF_ERROR(AnnotateStatus(CompleteAttrs(**def, &node->attrs_), context()));
  absl::StatusOr<std::vector<DType>> out_types = binder.OutputTypes();
  if (!out_types.ok()) return AnnotateStatus(out_types.status(), context());

  // Shape inference, with the values of inputs that come straight from Const nodes.
  std::vector<DType> in_types;
  std::vector<TensorShape> in_shapes;
  std::vector<const Tensor*> in_values;
  for (const Endpoint& in : spec.inputs) {
    in_types.push_back(in.node->output_type(in.index));
    in_shapes.push_back(in.node->output_shape(in.index));
    const Tensor* value = nullptr;
    if (in.node->op() == "Const") {
      auto it = in.node->attrs().find("value");
      if (it != in.node->attrs().end()) value = it->second.get_if<Tensor>();
    }
    in_values.push_back(value);
  }
  InferenceContext ic(&node->attrs_, std::move(in_types), std::move(in_shapes),
                      std::move(in_values), static_cast<int>(out_types->size()));
  if ((*def)->shape_fn) SLUICE_RETURN_IF_ERROR(AnnotateStatus((*def)->shape_fn(&ic), context()));

  node->id_ = static_cast<int>(nodes_.size());
  node->name_ = std::move(spec.name);
  node->inputs_ = std::move(spec.inputs);
  node->control_inputs_ = std::move(spec.control_inputs);
  node->output_types_ = *std::move(out_types);
  node->output_shapes_ = ic.output_shapes();
  node->requested_device_ = std::move(spec.device);
  node->source_location_ = std::move(spec.source_location);
  Node* raw = node.get();
  for (int i = 0; i < raw->num_inputs(); ++i) {
    const Endpoint& in = raw->inputs_[i];
    const_cast<Node*>(in.node)->out_edges_.push_back(OutEdge{raw, in.index, i});
  }
  for (const Node* c : raw->control_inputs_) {
    const_cast<Node*>(c)->out_edges_.push_back(OutEdge{raw, -1, -1});
  }
  by_name_[raw->name_] = raw;
  nodes_.push_back(std::move(node));
  return raw;
}

absl::Status Graph::Finalize() {
  // AddNode only accepts existing inputs, so the graph is acyclic by construction.
  finalized_ = true;
  return absl::OkStatus();
}

absl::Status Graph::SetAssignedDevice(const Node* node, std::string device) {
  if (finalized_) {
    return absl::FailedPreconditionError(
        absl::StrCat(node->DebugName(), ": cannot place a node of a finalized graph"));
  }
  const_cast<Node*>(node)->assigned_device_ = std::move(device);
  return absl::OkStatus();
}

const Node* Graph::FindNode(absl::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

std::vector<const Node*> Graph::nodes() const {
  std::vector<const Node*> out;
  out.reserve(nodes_.size());
  for (const auto& n : nodes_) out.push_back(n.get());
  return out;
}

absl::StatusOr<Endpoint> Graph::ParseEndpoint(absl::string_view text) const {
  absl::string_view name = text;
  int index = 0;
  size_t colon = text.rfind(':');
  if (colon != absl::string_view::npos) {
    name = text.substr(0, colon);
    if (!absl::SimpleAtoi(text.substr(colon + 1), &index) || index < 0) {
      return absl::InvalidArgumentError(absl::StrCat("malformed tensor name '", text, "'"));
    }
  }
  const Node* node = FindNode(name);
  if (node == nullptr) {
    return absl::NotFoundError(absl::StrCat("no node named '", name, "' in the graph"));
  }
  if (index >= node->num_outputs()) {
    return absl::InvalidArgumentError(absl::StrCat(node->DebugName(), " has ", node->num_outputs(),
                                                   " outputs; '", text, "' names output ", index));
  }
  return Endpoint{node, index};
}

std::string Graph::UniqueName(absl::string_view prefix) const {
  if (!by_name_.contains(prefix)) return std::string(prefix);
  for (int i = 1;; ++i) {
    std::string candidate = absl::StrCat(prefix, "_", i);
    if (!by_name_.contains(candidate)) return candidate;
  }
}

std::vector<const Node*> Graph::TopologicalOrder() const { return nodes(); }

std::vector<const Node*> PruneForFetches(const Graph& graph, const std::vector<Endpoint>& fetches,
                                         const std::vector<const Node*>& targets,
                                         const std::vector<Endpoint>& feeds) {
  std::vector<bool> fed(graph.num_nodes(), false);
  for (const Endpoint& f : feeds) fed[f.node->id()] = true;
  std::vector<bool> needed(graph.num_nodes(), false);
  std::vector<const Node*> stack;
  auto visit = [&](const Node* n) {
    if (!needed[n->id()]) {
      needed[n->id()] = true;
      stack.push_back(n);
    }
  };
  for (const Endpoint& f : fetches) visit(f.node);
  for (const Node* t : targets) visit(t);
  while (!stack.empty()) {
    const Node* n = stack.back();
    stack.pop_back();
    if (fed[n->id()]) continue;  // Fed nodes do not run: their inputs are not needed.
    for (const Endpoint& in : n->inputs()) visit(in.node);
    for (const Node* c : n->control_inputs()) visit(c);
  }
  std::vector<const Node*> out;
  for (const Node* n : graph.nodes()) {
    if (needed[n->id()]) out.push_back(n);
  }
  return out;
}

}  // namespace sluice
