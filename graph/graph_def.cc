#include "graph/graph_def.h"

#include <deque>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "core/status.h"
#include "core/tensor_proto.h"

namespace sluice {
namespace {

std::string NodeContext(const proto::NodeDef& n) {
  return absl::StrCat("node '", n.name(), "' (", n.op(), ")");
}

// "name:3" -> ("name", 3); "name" -> ("name", 0).
bool SplitInput(absl::string_view text, std::string* name, int* index) {
  *index = 0;
  size_t colon = text.rfind(':');
  if (colon == absl::string_view::npos) {
    *name = std::string(text);
    return !name->empty();
  }
  *name = std::string(text.substr(0, colon));
  return !name->empty() && absl::SimpleAtoi(text.substr(colon + 1), index) && *index >= 0;
}

}  // namespace

void AttrValueToProto(const AttrValue& value, proto::AttrValue* out) {
  struct Writer {
    proto::AttrValue* out;
    void operator()(int64_t v) const { out->set_i(v); }
    void operator()(float v) const { out->set_f(v); }
    void operator()(bool v) const { out->set_b(v); }
    void operator()(const std::string& v) const { out->set_s(v); }
    void operator()(DType v) const { out->set_type(DTypeToProto(v)); }
    void operator()(const TensorShape& v) const { ShapeToProto(v, out->mutable_shape()); }
    void operator()(const Tensor& v) const { TensorToProto(v, out->mutable_tensor()); }
    void operator()(const std::vector<int64_t>& v) const {
      auto* list = out->mutable_int_list();
      for (int64_t i : v) list->add_i(i);
    }
    void operator()(const std::vector<DType>& v) const {
      auto* list = out->mutable_type_list();
      for (DType d : v) list->add_type(DTypeToProto(d));
    }
  };
  std::visit(Writer{out}, value.storage());
}

absl::StatusOr<AttrValue> AttrValueFromProto(const proto::AttrValue& p) {
  switch (p.value_case()) {
    case proto::AttrValue::kI:
      return AttrValue(static_cast<int64_t>(p.i()));
    case proto::AttrValue::kF:
      return AttrValue(p.f());
    case proto::AttrValue::kB:
      return AttrValue(p.b());
    case proto::AttrValue::kS:
      return AttrValue(p.s());
    case proto::AttrValue::kType: {
      SLUICE_ASSIGN_OR_RETURN(DType d, DTypeFromProto(p.type()));
      return AttrValue(d);
    }
    case proto::AttrValue::kShape:
      return AttrValue(ShapeFromProto(p.shape()));
    case proto::AttrValue::kTensor: {
      SLUICE_ASSIGN_OR_RETURN(Tensor t, TensorFromProto(p.tensor()));
      return AttrValue(t);
    }
    case proto::AttrValue::kIntList:
      return AttrValue(std::vector<int64_t>(p.int_list().i().begin(), p.int_list().i().end()));
    case proto::AttrValue::kTypeList: {
      std::vector<DType> types;
      for (int t : p.type_list().type()) {
        SLUICE_ASSIGN_OR_RETURN(DType d, DTypeFromProto(static_cast<proto::DataType>(t)));
        types.push_back(d);
      }
      return AttrValue(types);
    }
    default:
      return absl::InvalidArgumentError("attribute value is not set");
  }
}

void ToGraphDef(const Graph& graph, proto::GraphDef* out) {
  out->Clear();
  out->set_version(kGraphDefVersion);
  for (const Node* n : graph.TopologicalOrder()) {
    proto::NodeDef* nd = out->add_node();
    nd->set_name(n->name());
    nd->set_op(n->op());
    for (const Endpoint& in : n->inputs()) {
      nd->add_input(in.index == 0 ? in.node->name() : in.DebugString());
    }
    for (const Node* c : n->control_inputs()) nd->add_input(absl::StrCat("^", c->name()));
    nd->set_device(n->requested_device());
    nd->set_assigned_device(n->assigned_device());
    for (const auto& [name, value] : n->attrs()) {
      AttrValueToProto(value, &(*nd->mutable_attr())[name]);
    }
  }
}

absl::StatusOr<std::unique_ptr<Graph>> GraphFromGraphDefUnfinalized(const proto::GraphDef& def,
                                                                    const OpRegistry* registry) {
  if (def.version() > kGraphDefVersion) {
    return absl::InvalidArgumentError(absl::StrCat("GraphDef version ", def.version(),
                                                   " is newer than this build supports (",
                                                   kGraphDefVersion, ")"));
  }
  const int n = def.node_size();
  absl::flat_hash_map<std::string, int> index;
  for (int i = 0; i < n; ++i) {
    if (def.node(i).name().size() > kMaxNodeNameBytes) return NameTooLong(def.node(i).name());
    if (!index.emplace(def.node(i).name(), i).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          NodeContext(def.node(i)), ": duplicate node name '", def.node(i).name(), "'"));
    }
  }
  // Resolve input names and order the nodes (Kahn's algorithm); what is left over is a cycle.
  std::vector<std::vector<int>> consumers(n);
  std::vector<int> pending(n, 0);
  for (int i = 0; i < n; ++i) {
    const proto::NodeDef& nd = def.node(i);
    bool seen_control = false;
    for (const std::string& in : nd.input()) {
      bool control = absl::StartsWith(in, "^");
      if (!control && seen_control) {
        return absl::InvalidArgumentError(
            absl::StrCat(NodeContext(nd), ": data input '", in, "' follows a control input"));
      }
      seen_control |= control;
      std::string name;
      int idx;
      if (!SplitInput(control ? absl::string_view(in).substr(1) : absl::string_view(in), &name,
                      &idx)) {
        return absl::InvalidArgumentError(
            absl::StrCat(NodeContext(nd), ": malformed input '", in, "'"));
      }
      auto it = index.find(name);
      if (it == index.end()) {
        return absl::InvalidArgumentError(absl::StrCat(NodeContext(nd), ": input '", in,
                                                       "' refers to unknown node '", name, "'"));
      }
      consumers[it->second].push_back(i);
      ++pending[i];
    }
  }
  std::deque<int> ready;
  for (int i = 0; i < n; ++i) {
    if (pending[i] == 0) ready.push_back(i);
  }
  std::vector<int> order;
  while (!ready.empty()) {
    int i = ready.front();
    ready.pop_front();
    order.push_back(i);
    for (int c : consumers[i]) {
      if (--pending[c] == 0) ready.push_back(c);
    }
  }
  if (static_cast<int>(order.size()) != n) {
    std::vector<std::string> cyclic;
    for (int i = 0; i < n && cyclic.size() < 10; ++i) {
      if (pending[i] > 0) cyclic.push_back(def.node(i).name());
    }
    return absl::InvalidArgumentError(
        absl::StrCat("graph has a cycle through node '", cyclic.front(),
                     "' (nodes on or after cycles: ", absl::StrJoin(cyclic, ", "), ")"));
  }

  auto graph = std::make_unique<Graph>(registry);
  for (int i : order) {
    const proto::NodeDef& nd = def.node(i);
    NodeSpec spec;
    spec.name = nd.name();
    spec.op = nd.op();
    spec.device = nd.device();
    for (const std::string& in : nd.input()) {
      bool control = absl::StartsWith(in, "^");
      std::string name;
      int idx;
      SplitInput(control ? absl::string_view(in).substr(1) : absl::string_view(in), &name, &idx);
      const Node* src = graph->FindNode(name);
      if (control) {
        spec.control_inputs.push_back(src);
      } else {
        if (idx >= src->num_outputs()) {
          return absl::InvalidArgumentError(
              absl::StrCat(NodeContext(nd), ": input '", in, "' names output ", idx, " but ",
                           src->DebugName(), " has ", src->num_outputs(), " outputs"));
        }
        spec.inputs.push_back(Endpoint{src, idx});
      }
    }
    for (const auto& [name, value] : nd.attr()) {
      absl::StatusOr<AttrValue> v = AttrValueFromProto(value);
      if (!v.ok()) {
        return AnnotateStatus(v.status(),
                              absl::StrCat(NodeContext(nd), ": attribute '", name, "'"));
      }
      spec.attrs[name] = *std::move(v);
    }
    SLUICE_ASSIGN_OR_RETURN(Node * node, graph->AddNode(std::move(spec)));
    if (!nd.assigned_device().empty()) {
      SLUICE_RETURN_IF_ERROR(graph->SetAssignedDevice(node, nd.assigned_device()));
    }
  }
  return graph;
}

absl::StatusOr<std::unique_ptr<Graph>> GraphFromGraphDef(const proto::GraphDef& def,
                                                         const OpRegistry* registry) {
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<Graph> graph,
                          GraphFromGraphDefUnfinalized(def, registry));
  SLUICE_RETURN_IF_ERROR(graph->Finalize());
  return graph;
}

}  // namespace sluice
