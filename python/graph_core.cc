#include "python/graph_core.h"

#include <cmath>
#include <limits>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/status.h"
#include "graph/graph_def.h"
#include "ops/register.h"

namespace sluice {
namespace python {
namespace {

template <typename To, typename From>
bool ConvertsLosslessly(From x) {
  if constexpr (std::is_same_v<To, bool>) {
    return x == From(0) || x == From(1);
  } else if constexpr (std::is_floating_point_v<To>) {
    return true;  // Float literals round like numpy's astype; integers become floats.
  } else if constexpr (std::is_floating_point_v<From>) {
    return std::trunc(x) == x && x >= static_cast<From>(std::numeric_limits<To>::min()) &&
           x <= static_cast<From>(std::numeric_limits<To>::max());
  } else if constexpr (std::is_same_v<From, bool>) {
    return true;
  } else {
    return static_cast<int64_t>(x) >= static_cast<int64_t>(std::numeric_limits<To>::min()) &&
           static_cast<int64_t>(x) <= static_cast<int64_t>(std::numeric_limits<To>::max());
  }
}

// `value` as `dtype`, or an error when an element would change (1.5 -> int32, 300 -> bool).
absl::StatusOr<Tensor> ConvertLiteral(const Tensor& value, DType dtype) {
  Tensor out(dtype, value.shape());
  bool ok = true;
  SLUICE_SWITCH_DTYPE(
      value.dtype(), From,
      {
        SLUICE_SWITCH_DTYPE(
            dtype, To,
            {
              const From* in = value.data<From>();
              To* o = out.data<To>();
              for (int64_t i = 0; i < value.num_elements() && ok; ++i) {
                ok = ConvertsLosslessly<To>(in[i]);
                o[i] = static_cast<To>(in[i]);
              }
            },
            { ok = false; });
      },
      { ok = false; });
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat("the literal ", value.DebugString(4),
                                                   " cannot be converted to ", DTypeName(dtype),
                                                   " without changing its value"));
  }
  return out;
}

// The ResourceMgr name of the variable a Variable node reads (ops/state_ops.h).
std::string VariableName(const Node& node) {
  absl::StatusOr<std::string> shared = node.GetAttr<std::string>("shared_name");
  return shared.ok() && !shared->empty() ? *shared : node.name();
}

}  // namespace

Tensor DefaultTypedLiteral(const Tensor& wide) {
  if (wide.dtype() == DType::kFloat64) return *ConvertLiteral(wide, DType::kFloat32);
  if (wide.dtype() == DType::kInt64) {
    absl::StatusOr<Tensor> narrow = ConvertLiteral(wide, DType::kInt32);
    if (narrow.ok()) return *std::move(narrow);
  }
  return wide;
}

GraphCore::GraphCore() : root_(ops::NewRootScope()), frames_(1) {}

std::string GraphCore::Qualified(const std::string& name) const {
  const std::string& prefix = frames_.back().prefix;
  return prefix.empty() ? name : absl::StrCat(prefix, "/", name);
}

std::string GraphCore::UniqueName(const std::string& base) const {
  auto taken = [this](const std::string& n) {
    return graph().FindNode(n) != nullptr || scope_names_.contains(n);
  };
  if (!taken(base)) return base;
  for (int i = 1;; ++i) {
    std::string candidate = absl::StrCat(base, "_", i);
    if (!taken(candidate)) return candidate;
  }
}

std::string GraphCore::PushNameScope(const std::string& name) {
  Frame frame = frames_.back();
  if (name.empty()) {
    frame.prefix.clear();
  } else if (name.back() == '/') {
    frame.prefix = name.substr(0, name.size() - 1);  // Re-entering a scope by its full name.
  } else {
    frame.prefix = UniqueName(Qualified(name));
    scope_names_.insert(frame.prefix);
  }
  frames_.push_back(std::move(frame));
  return frames_.back().prefix.empty() ? "" : frames_.back().prefix + "/";
}

void GraphCore::PushDevice(const std::string& device) {
  Frame frame = frames_.back();
  frame.device = device;
  frame.device_fn = nullptr;
  frames_.push_back(std::move(frame));
}

void GraphCore::PushDeviceFunction(std::function<std::string(const DeviceQuery&)> choose) {
  Frame frame = frames_.back();
  frame.device.clear();
  frame.device_fn = std::move(choose);
  frames_.push_back(std::move(frame));
}

std::string GraphCore::DeviceFor(const DeviceQuery& query) const {
  const Frame& f = frames_.back();
  return f.device_fn ? f.device_fn(query) : f.device;
}

void GraphCore::PushControlDependencies(const std::vector<const Node*>& deps, bool clear) {
  Frame frame = frames_.back();
  if (clear) frame.control_deps.clear();
  for (const Node* d : deps) {
    bool seen = false;
    for (const Node* have : frame.control_deps) seen |= have == d;
    if (!seen) frame.control_deps.push_back(d);
  }
  frames_.push_back(std::move(frame));
}

absl::Status GraphCore::PopFrame() {
  if (frames_.size() <= 1) {
    return absl::FailedPreconditionError("no name scope, device or control dependency to leave");
  }
  frames_.pop_back();
  return absl::OkStatus();
}

absl::StatusOr<Scope> GraphCore::DslScope(const std::string& name, const std::string& what,
                                          const std::string& op_type, int64_t bytes) const {
  if (!root_.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("cannot build ", what,
                                                      ": an earlier error stopped this graph's C++ "
                                                      "builders (",
                                                      root_.status().message(),
                                                      "); build a new graph"));
  }
  const Frame& f = frames_.back();
  Scope s = f.prefix.empty() ? root_ : root_.NewSubScope(f.prefix);
  std::string unique;
  if (!name.empty()) unique = UniqueName(Qualified(name));
  if (const std::string device = DeviceFor({op_type, unique, bytes}); !device.empty()) {
    s = s.WithDevice(device);
  }
  if (!f.control_deps.empty()) s = s.WithControlDependencies(f.control_deps);
  if (!name.empty()) {
    // UniqueName(prefix/name) is prefix/<unique>, and the scope adds the prefix back.
    s = s.WithOpName(f.prefix.empty() ? unique : unique.substr(f.prefix.size() + 1));
  }
  return s;
}

std::string GraphCore::ReserveNameScope(const std::string& name) {
  std::string full = UniqueName(Qualified(name));
  scope_names_.insert(full);
  const std::string& prefix = frames_.back().prefix;
  return prefix.empty() ? full : full.substr(prefix.size() + 1);
}

absl::StatusOr<const Node*> GraphCore::AddConst(const Tensor& value, const std::string& name,
                                                const std::string& source_location) {
  NodeSpec spec;
  spec.name = UniqueName(Qualified(name.empty() ? "Const" : name));
  spec.op = "Const";
  spec.attrs = {{"value", AttrValue(value)}, {"dtype", AttrValue(value.dtype())}};
  spec.device = DeviceFor({"Const", ""});
  spec.control_inputs = frames_.back().control_deps;
  spec.source_location = source_location;
  return root_.graph()->AddNode(std::move(spec));
}

absl::StatusOr<Endpoint> GraphCore::LiteralNode(const InputValue& value, DType want,
                                                const std::string& op_name,
                                                const std::string& arg_name,
                                                const std::string& source_location) {
  Tensor t = value.literal;
  if (want == DType::kInvalid && value.literal_is_default_typed) t = DefaultTypedLiteral(t);
  if (want != DType::kInvalid && want != t.dtype()) {
    absl::StatusOr<Tensor> converted = ConvertLiteral(t, want);
    if (!converted.ok()) {
      return AnnotateStatus(converted.status(),
                            absl::StrCat("input '", arg_name, "' of ", op_name));
    }
    t = *std::move(converted);
  }
  // Constants made for literals run whenever their consumer does: no control dependencies.
  NodeSpec spec;
  spec.name = UniqueName(Qualified("Const"));
  spec.op = "Const";
  spec.attrs = {{"value", AttrValue(t)}, {"dtype", AttrValue(t.dtype())}};
  spec.device = DeviceFor({"Const", ""});
  spec.source_location = source_location;
  SLUICE_ASSIGN_OR_RETURN(Node * node, root_.graph()->AddNode(std::move(spec)));
  return Endpoint{node, 0};
}

absl::StatusOr<const Node*> GraphCore::AddOp(const std::string& op,
                                             const std::vector<InputArg>& inputs, AttrMap attrs,
                                             const std::string& name,
                                             const std::string& source_location) {
  const std::string node_name = UniqueName(Qualified(name.empty() ? op : name));
  const std::string context =
      absl::StrCat("node '", node_name, "' (", op, ")",
                   source_location.empty() ? "" : absl::StrCat(" built at ", source_location));
  if (finalized()) {
    return absl::FailedPreconditionError(
        absl::StrCat(context,
                     ": the graph is finalized (Graph.finalize() was called); no operation "
                     "can be added"));
  }
  absl::StatusOr<const OpDef*> found = graph().registry()->LookUp(op);
  if (!found.ok()) return AnnotateStatus(found.status(), context);
  const OpDef& def = **found;
  if (inputs.size() != def.inputs.size()) {
    std::vector<std::string> names;
    for (const ArgDef& a : def.inputs) names.push_back(a.name);
    return absl::InvalidArgumentError(absl::StrCat(context, ": takes ", def.inputs.size(),
                                                   " inputs (", absl::StrJoin(names, ", "),
                                                   "), got ", inputs.size()));
  }

  // The dtype each type attribute needs: set explicitly, else from the first non-literal input
  // bound to it, else from the first explicitly typed literal (a numpy array), else the default
  // dtype of the first Python literal (so add(1.0, 2) is a float32 addition).
  auto wanted = [&](const ArgDef& arg) {
    if (arg.fixed_type != DType::kInvalid) return arg.fixed_type;
    if (auto it = attrs.find(arg.type_attr); it != attrs.end() && it->second.get_if<DType>()) {
      return *it->second.get_if<DType>();
    }
    DType typed_literal = DType::kInvalid, python_literal = DType::kInvalid;
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (def.inputs[i].type_attr != arg.type_attr) continue;
      for (const InputValue& v : inputs[i].values) {
        if (!v.is_literal) return v.output.node->output_type(v.output.index);
        if (typed_literal == DType::kInvalid && !v.literal_is_default_typed) {
          typed_literal = v.literal.dtype();
        }
        if (python_literal == DType::kInvalid && v.literal_is_default_typed) {
          python_literal = DefaultTypedLiteral(v.literal).dtype();
        }
      }
    }
    return typed_literal != DType::kInvalid ? typed_literal : python_literal;
  };

  std::vector<Endpoint> endpoints;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const ArgDef& arg = def.inputs[i];
    const bool list_arg = !arg.number_attr.empty();
    if (inputs[i].is_list != list_arg) {
      return absl::InvalidArgumentError(
          absl::StrCat(context, ": input '", arg.name, "' must be ",
                       list_arg ? "a list of tensors" : "a single tensor, not a list"));
    }
    if (list_arg && !attrs.count(arg.number_attr)) {
      attrs[arg.number_attr] = AttrValue(static_cast<int64_t>(inputs[i].values.size()));
    }
    const DType want = wanted(arg);
    for (const InputValue& v : inputs[i].values) {
      if (!v.is_literal) {
        endpoints.push_back(v.output);
        continue;
      }
      absl::StatusOr<Endpoint> c = LiteralNode(v, want, op, arg.name, source_location);
      if (!c.ok()) return AnnotateStatus(c.status(), context);
      endpoints.push_back(*c);
    }
  }

  NodeSpec spec;
  spec.name = node_name;
  spec.op = op;
  spec.inputs = std::move(endpoints);
  spec.control_inputs = frames_.back().control_deps;
  spec.attrs = std::move(attrs);
  spec.device = DeviceFor({op, node_name});
  spec.source_location = source_location;
  return root_.graph()->AddNode(std::move(spec));
}

absl::StatusOr<Endpoint> GraphCore::WriteHandle(const Endpoint& variable,
                                                const std::string& source_location) {
  const Node& v = *variable.node;
  if (v.op() != "Variable") {
    return absl::InvalidArgumentError(absl::StrCat(
        "can only assign to a variable; ", variable.DebugString(), " comes from ", v.DebugName()));
  }
  absl::StatusOr<TensorShape> shape = v.GetAttr<TensorShape>("shape");
  NodeSpec spec;
  spec.name = UniqueName(absl::StrCat(v.name(), "_ref/Variable"));
  spec.op = "Variable";
  spec.attrs = {{"dtype", AttrValue(v.output_type(0))},
                {"shared_name", AttrValue(VariableName(v))},
                {"shape", AttrValue(shape.ok() ? *shape : TensorShape::UnknownRank())}};
  spec.device = v.requested_device();
  spec.source_location = source_location;
  SLUICE_ASSIGN_OR_RETURN(Node * node, root_.graph()->AddNode(std::move(spec)));
  return Endpoint{node, 0};
}

absl::StatusOr<std::shared_ptr<const Graph>> GraphCore::Finalize() {
  if (!root_.graph()->finalized()) SLUICE_RETURN_IF_ERROR(root_.graph()->Finalize());
  // Aliasing: the graph stays alive as long as this GraphCore (which owns it) does.
  return std::shared_ptr<const Graph>(shared_from_this(), root_.graph());
}

absl::StatusOr<std::shared_ptr<const Graph>> GraphCore::Snapshot() {
  if (finalized()) return Finalize();
  if (snapshot_ != nullptr && snapshot_nodes_ == graph().num_nodes()) return snapshot_;
  proto::GraphDef def;
  ToGraphDef(graph(), &def);
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<Graph> copy, GraphFromGraphDef(def, graph().registry()));
  snapshot_ = std::move(copy);
  snapshot_nodes_ = graph().num_nodes();
  return snapshot_;
}

}  // namespace python
}  // namespace sluice
