#include "graph/partitioner.h"

#include <map>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace sluice {
namespace {

// Builds the partitions device by device while walking the original graph in topological order.
class Partitioner {
 public:
  Partitioner(const Graph& graph, const Placement& placement)
      : graph_(graph), placement_(placement), parts_(placement.devices.size()) {}

  absl::StatusOr<PartitionedGraph> Run(const PartitionOptions& options);

 private:
  struct Part {
    std::unique_ptr<Graph> graph;
    // Received tensors: (src node id, src output or -1 for control) -> the _Recv node here.
    std::map<std::pair<int, int>, const Node*> received;
  };

  Graph* PartGraph(int device) {
    Part& p = parts_[device];
    if (p.graph == nullptr) p.graph = std::make_unique<Graph>(graph_.registry());
    return p.graph.get();
  }
  // `base` if neither the original graph nor partition `device` has a node of that name.
  std::string FreshName(int device, const std::string& base) {
    Graph* g = PartGraph(device);
    std::string name = base;
    for (int i = 1; graph_.FindNode(name) != nullptr || g->FindNode(name) != nullptr; ++i) {
      name = absl::StrCat(base, "_", i);
    }
    return name;
  }
  absl::StatusOr<const Node*> Add(int device, NodeSpec spec) {
    Graph* g = PartGraph(device);
    SLUICE_ASSIGN_OR_RETURN(Node * node, g->AddNode(std::move(spec)));
    SLUICE_RETURN_IF_ERROR(g->SetAssignedDevice(node, placement_.devices[device]));
    return node;
  }
  AttrMap TransferAttrs(const std::string& tensor_name, int src, int dst, DType dtype,
                        const TensorShape& shape) const {
    return {{"tensor_name", AttrValue(tensor_name)},
            {"send_device", AttrValue(placement_.devices[src])},
            {"recv_device", AttrValue(placement_.devices[dst])},
            {"client_terminated", AttrValue(false)},
            {"T", AttrValue(dtype)},
            {"shape", AttrValue(shape)}};
  }
  // The _Recv node in partition `dst` that delivers output `index` of `src` (-1: a control
  // transfer), creating the Send/Recv pair on first use.
  absl::StatusOr<const Node*> Receive(const Node* src, int index, int dst);
  absl::Status CopyNode(const Node* n, int device);
  absl::Status AddFedStandIns(const Node* n, int device, const std::vector<bool>& fed_outputs);

  const Graph& graph_;
  const Placement& placement_;
  std::vector<Part> parts_;
  std::vector<int> device_of_;  // Of every original node.
  std::vector<PartitionedGraph::Located> located_;
  std::vector<Transfer> transfers_;
};

absl::StatusOr<const Node*> Partitioner::Receive(const Node* src, int index, int dst) {
  auto key = std::make_pair(src->id(), index);
  auto it = parts_[dst].received.find(key);
  if (it != parts_[dst].received.end()) return it->second;
  const int from = device_of_[src->id()];
  const PartitionedGraph::Located& loc = located_[src->id()];
  Transfer t;
  t.src = src;
  t.src_output = index;
  t.src_device = from;
  t.dst_device = dst;
  const std::string suffix = absl::StrCat(index < 0 ? "ctrl" : absl::StrCat(index));
  Endpoint payload;
  if (index >= 0) {
    t.tensor_name = absl::StrCat(src->name(), ":", index);
    t.dtype = src->output_type(index);
    t.shape = src->output_shape(index);
    payload = loc.outputs[index];
  } else {
    // A control-only transfer sends an empty tensor once `src` has run.
    t.tensor_name = absl::StrCat("^", src->name());
    t.shape = TensorShape({0});
    NodeSpec c;
    c.name = FreshName(from, absl::StrCat(src->name(), "/_ctrl_", dst));
    c.op = "Const";
    c.attrs = {{"value", AttrValue(Tensor(DType::kBool, TensorShape({0})))},
               {"dtype", AttrValue(DType::kBool)}};
    c.control_inputs = {loc.node};
    SLUICE_ASSIGN_OR_RETURN(const Node* cnode, Add(from, std::move(c)));
    payload = Endpoint{cnode, 0};
  }
  NodeSpec send;
  send.name = FreshName(from, absl::StrCat(src->name(), "/_send_", suffix, "_to_", dst));
  send.op = kSendOp;
  send.inputs = {payload};
  send.attrs = TransferAttrs(t.tensor_name, from, dst, t.dtype, t.shape);
  SLUICE_ASSIGN_OR_RETURN(const Node* send_node, Add(from, std::move(send)));
  NodeSpec recv;
  recv.name = FreshName(dst, absl::StrCat(src->name(), "/_recv_", suffix, "_from_", from));
  recv.op = kRecvOp;
  recv.attrs = TransferAttrs(t.tensor_name, from, dst, t.dtype, t.shape);
  SLUICE_ASSIGN_OR_RETURN(const Node* recv_node, Add(dst, std::move(recv)));
  t.send_node = send_node->name();
  t.recv_node = recv_node->name();
  transfers_.push_back(std::move(t));
  parts_[dst].received.emplace(key, recv_node);
  return recv_node;
}

absl::Status Partitioner::AddFedStandIns(const Node* n, int device,
                                         const std::vector<bool>& fed_outputs) {
  PartitionedGraph::Located& loc = located_[n->id()];
  loc.outputs.resize(n->num_outputs());
  for (int o = 0; o < n->num_outputs(); ++o) {
    if (!fed_outputs[o]) continue;
    NodeSpec spec;
    spec.name =
        n->num_outputs() == 1 ? n->name() : FreshName(device, absl::StrCat(n->name(), "/_fed_", o));
    spec.op = "Placeholder";
    spec.attrs = {{"dtype", AttrValue(n->output_type(o))},
                  {"shape", AttrValue(n->output_shape(o))}};
    spec.device = n->requested_device();
    spec.source_location = n->source_location();
    SLUICE_ASSIGN_OR_RETURN(const Node* p, Add(device, std::move(spec)));
    loc.outputs[o] = Endpoint{p, 0};
    if (loc.node == nullptr) loc.node = p;
  }
  loc.partition = device;
  return absl::OkStatus();
}

absl::Status Partitioner::CopyNode(const Node* n, int device) {
  NodeSpec spec;
  spec.name = n->name();
  spec.op = n->op();
  spec.attrs = n->attrs();
  spec.device = n->requested_device();
  spec.source_location = n->source_location();
  auto local = [&](const Node* src, int index) -> absl::StatusOr<Endpoint> {
    const PartitionedGraph::Located& loc = located_[src->id()];
    if (loc.partition < 0) {
      return absl::InvalidArgumentError(absl::StrCat(n->DebugName(), ": its input ",
                                                     src->DebugName(),
                                                     " is not among the nodes to partition"));
    }
    if (device_of_[src->id()] == device) {
      if (index < 0) return Endpoint{loc.node, 0};
      if (loc.outputs[index].node == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat(src->DebugName(), ": output ", index,
                         " is not fed, but the node is (partial feeds "
                         "of multi-output nodes are not supported)"));
      }
      return loc.outputs[index];
    }
    if (index >= 0 && loc.outputs[index].node == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(src->DebugName(), ": output ", index,
                                                     " is not fed, but the node is (partial feeds "
                                                     "of multi-output nodes are not supported)"));
    }
    SLUICE_ASSIGN_OR_RETURN(const Node* recv, Receive(src, index, device));
    return Endpoint{recv, 0};
  };
  for (const Endpoint& in : n->inputs()) {
    SLUICE_ASSIGN_OR_RETURN(Endpoint e, local(in.node, in.index));
    spec.inputs.push_back(e);
  }
  for (const Node* c : n->control_inputs()) {
    SLUICE_ASSIGN_OR_RETURN(Endpoint e, local(c, -1));
    if (std::find(spec.control_inputs.begin(), spec.control_inputs.end(), e.node) ==
        spec.control_inputs.end()) {
      spec.control_inputs.push_back(e.node);
    }
  }
  SLUICE_ASSIGN_OR_RETURN(const Node* copy, Add(device, std::move(spec)));
  PartitionedGraph::Located& loc = located_[n->id()];
  loc.partition = device;
  loc.node = copy;
  for (int o = 0; o < copy->num_outputs(); ++o) loc.outputs.push_back(Endpoint{copy, o});
  return absl::OkStatus();
}

absl::StatusOr<PartitionedGraph> Partitioner::Run(const PartitionOptions& options) {
  const int n = graph_.num_nodes();
  if (static_cast<int>(placement_.device_of.size()) != n) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the placement covers ", placement_.device_of.size(), " nodes but the graph has ", n));
  }
  device_of_ = placement_.device_of;
  located_.resize(n);
  std::vector<bool> chosen(n, options.nodes.empty());
  for (const Node* node : options.nodes) chosen[node->id()] = true;
  std::vector<std::vector<bool>> fed(n);
  for (const Endpoint& f : options.feeds) {
    std::vector<bool>& outs = fed[f.node->id()];
    outs.resize(f.node->num_outputs(), false);
    outs[f.index] = true;
  }
  for (const Node* node : graph_.TopologicalOrder()) {
    if (!chosen[node->id()]) continue;
    int d = device_of_[node->id()];
    if (d < 0 || d >= static_cast<int>(placement_.devices.size())) {
      return absl::InvalidArgumentError(absl::StrCat(node->DebugName(), " is not placed"));
    }
    absl::Status s =
        fed[node->id()].empty() ? CopyNode(node, d) : AddFedStandIns(node, d, fed[node->id()]);
    if (!s.ok()) return AnnotateStatus(s, "partitioning");
  }
  PartitionedGraph out;
  std::vector<int> partition_of_device(parts_.size(), -1);
  for (size_t d = 0; d < parts_.size(); ++d) {
    if (parts_[d].graph == nullptr) continue;
    SLUICE_RETURN_IF_ERROR(parts_[d].graph->Finalize());
    partition_of_device[d] = static_cast<int>(out.partitions.size());
    out.partitions.push_back(
        GraphPartition{placement_.devices[d], static_cast<int>(d),
                       std::shared_ptr<const Graph>(std::move(parts_[d].graph))});
  }
  for (PartitionedGraph::Located& loc : located_) {
    if (loc.partition >= 0) loc.partition = partition_of_device[loc.partition];
  }
  out.located = std::move(located_);
  out.transfers = std::move(transfers_);
  return out;
}

}  // namespace

absl::StatusOr<std::pair<int, Endpoint>> PartitionedGraph::Locate(const Endpoint& e) const {
  int id = e.node == nullptr ? -1 : e.node->id();
  if (id < 0 || id >= static_cast<int>(located.size()) || located[id].partition < 0) {
    return absl::NotFoundError(
        absl::StrCat("output ", e.DebugString(), " is not in any partition"));
  }
  const Located& loc = located[id];
  if (e.index < 0 || e.index >= static_cast<int>(loc.outputs.size()) ||
      loc.outputs[e.index].node == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("output ", e.DebugString(), " is not in any partition (a partial feed?)"));
  }
  return std::make_pair(loc.partition, loc.outputs[e.index]);
}

absl::StatusOr<std::pair<int, const Node*>> PartitionedGraph::LocateNode(const Node* node) const {
  int id = node == nullptr ? -1 : node->id();
  if (id < 0 || id >= static_cast<int>(located.size()) || located[id].partition < 0) {
    return absl::NotFoundError(
        absl::StrCat(node ? node->DebugName() : "null node", " is not in any partition"));
  }
  return std::make_pair(located[id].partition, located[id].node);
}

absl::StatusOr<PartitionedGraph> PartitionGraph(const Graph& graph, const Placement& placement,
                                                const PartitionOptions& options) {
  return Partitioner(graph, placement).Run(options);
}

}  // namespace sluice
