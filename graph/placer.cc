#include "graph/placer.h"

#include <algorithm>
#include <deque>
#include <map>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/status.h"
#include "graph/device_name.h"

namespace sluice {
namespace {

double Elements(const TensorShape& shape, int64_t unknown) {
  if (shape.unknown_rank()) return static_cast<double>(unknown);
  double n = 1;
  for (int64_t d : shape.dims()) n *= static_cast<double>(d < 0 ? unknown : d);
  return n;
}

bool IsFreeOp(absl::string_view op) {
  static const auto* ops =
      new absl::flat_hash_set<std::string>{"Const",   "Placeholder", "Variable", "Identity", "NoOp",
                                           "Reshape", "Assign",      "_Send",    "_Recv"};
  return ops->contains(op);
}

bool IsTranscendental(absl::string_view op) {
  static const auto* ops =
      new absl::flat_hash_set<std::string>{"Exp",
                                           "Log",
                                           "Sigmoid",
                                           "Tanh",
                                           "Softmax",
                                           "LogSoftmax",
                                           "Sqrt",
                                           "SoftmaxCrossEntropyWithLogits",
                                           "SparseSoftmaxCrossEntropyWithLogits"};
  return ops->contains(op);
}

std::string VariableNameOf(const Node& n) {
  absl::StatusOr<std::string> shared = n.GetAttr<std::string>("shared_name");
  return shared.ok() && !shared->empty() ? *shared : n.name();
}

// Union-find over nodes that remembers why each pair was joined, so a conflict can be explained
// as the chain of links between two nodes.
class ColocationGraph {
 public:
  explicit ColocationGraph(int n) : parent_(n), adjacent_(n) {
    for (int i = 0; i < n; ++i) parent_[i] = i;
  }

  void Link(const Node* a, const Node* b, std::string reason) {
    if (a == b) return;
    int id = static_cast<int>(reasons_.size());
    reasons_.push_back(std::move(reason));
    adjacent_[a->id()].push_back({b->id(), id});
    adjacent_[b->id()].push_back({a->id(), id});
    int ra = Find(a->id()), rb = Find(b->id());
    if (ra != rb) parent_[std::max(ra, rb)] = std::min(ra, rb);
  }

  int Find(int x) {
    while (parent_[x] != x) x = parent_[x] = parent_[parent_[x]];
    return x;
  }

  // The reasons along a shortest chain of links from `from` to `to` (same group).
  std::vector<std::string> Chain(int from, int to) const {
    std::vector<std::pair<int, int>> via(parent_.size(), {-1, -1});  // (previous node, link)
    std::deque<int> queue = {from};
    via[from] = {from, -1};
    while (!queue.empty()) {
      int x = queue.front();
      queue.pop_front();
      if (x == to) break;
      for (auto [y, link] : adjacent_[x]) {
        if (via[y].first >= 0) continue;
        via[y] = {x, link};
        queue.push_back(y);
      }
    }
    std::vector<std::string> chain;
    for (int x = to; x != from && via[x].first >= 0; x = via[x].first) {
      chain.push_back(reasons_[via[x].second]);
    }
    std::reverse(chain.begin(), chain.end());
    return chain;
  }

 private:
  std::vector<int> parent_;
  std::vector<std::vector<std::pair<int, int>>> adjacent_;
  std::vector<std::string> reasons_;
};

absl::Status BuildColocation(const Graph& graph, const PlacerOptions& options,
                             ColocationGraph* coloc) {
  // Variables: one group per variable name, plus the stateful ops that update it by reference.
  absl::flat_hash_map<std::string, const Node*> first_of_variable;
  for (const Node* n : graph.nodes()) {
    if (n->op() != "Variable") continue;
    std::string var = VariableNameOf(*n);
    auto [it, inserted] = first_of_variable.emplace(var, n);
    if (!inserted) {
      coloc->Link(it->second, n,
                  absl::StrCat(it->second->DebugName(), " and ", n->DebugName(),
                               " hold the same variable '", var, "'"));
    }
    for (const OutEdge& e : n->out_edges()) {
      if (e.is_control() || !e.dst->IsRefInput(e.input_index)) continue;
      coloc->Link(n, e.dst,
                  absl::StrCat(n->DebugName(), " is the variable that ", e.dst->DebugName(),
                               " updates in place (input ", e.input_index, ")"));
    }
  }
  // "_class" attributes: "loc:@name[,loc:@other]".
  for (const Node* n : graph.nodes()) {
    absl::StatusOr<std::string> cls = n->GetAttr<std::string>("_class");
    if (!cls.ok() || cls->empty()) continue;
    for (absl::string_view item : absl::StrSplit(*cls, ',')) {
      item = absl::StripAsciiWhitespace(item);
      if (!absl::ConsumePrefix(&item, "loc:@")) {
        return absl::InvalidArgumentError(absl::StrCat(n->DebugName(), ": attribute _class '", *cls,
                                                       "' is not of the form loc:@node"));
      }
      const Node* other = graph.FindNode(item);
      if (other == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(n->DebugName(),
                                                       ": attribute _class names node '", item,
                                                       "', which is not in the graph"));
      }
      coloc->Link(n, other,
                  absl::StrCat(n->DebugName(), " asks to be colocated with ", other->DebugName(),
                               " (_class loc:@", item, ")"));
    }
  }
  for (const std::vector<std::string>& group : options.colocate) {
    const Node* first = nullptr;
    for (const std::string& name : group) {
      const Node* n = graph.FindNode(name);
      if (n == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat("PlacerOptions::colocate names node '", name,
                                                       "', which is not in the graph"));
      }
      if (first == nullptr) {
        first = n;
        continue;
      }
      coloc->Link(first, n,
                  absl::StrCat(first->DebugName(), " and ", n->DebugName(),
                               " are colocated by PlacerOptions::colocate"));
    }
  }
  return absl::OkStatus();
}

// A colocation group: its nodes, its merged request and the devices it may go to.
struct Group {
  std::vector<const Node*> members;  // By id.
  DeviceName request;
  std::vector<int> candidates;  // Device indices.
  double cost_ns = 0;
};

// Merges the device requests of a group; on conflict explains it with the colocation chain.
absl::Status MergeRequests(const std::vector<DeviceName>& requests, ColocationGraph* coloc,
                           Group* group) {
  // Which member set each component of the merged request: job, replica, task, type, id.
  const Node* source[5] = {nullptr, nullptr, nullptr, nullptr, nullptr};
  for (const Node* n : group->members) {
    const DeviceName& r = requests[n->id()];
    if (r.empty()) continue;
    DeviceName& m = group->request;
    const bool conflict[5] = {
        m.job && r.job && *m.job != *r.job, m.replica && r.replica && *m.replica != *r.replica,
        m.task && r.task && *m.task != *r.task, m.type && r.type && *m.type != *r.type,
        m.id && r.id && *m.id != *r.id};
    for (int c = 0; c < 5; ++c) {
      if (!conflict[c]) continue;
      const Node* other = source[c];
      std::vector<std::string> chain = coloc->Chain(other->id(), n->id());
      return absl::InvalidArgumentError(
          absl::StrCat("cannot satisfy the device requests of colocated nodes: ", n->DebugName(),
                       " requests '", n->requested_device(), "' but ", other->DebugName(),
                       " requests '", other->requested_device(),
                       "', and they must share a device because ", absl::StrJoin(chain, ", and ")));
    }
    const bool sets[5] = {!m.job && r.job, !m.replica && r.replica, !m.task && r.task,
                          !m.type && r.type, !m.id && r.id};
    for (int c = 0; c < 5; ++c) {
      if (sets[c]) source[c] = n;
    }
    SLUICE_RETURN_IF_ERROR(m.MergeFrom(r));
  }
  return absl::OkStatus();
}

std::vector<int> MatchingDevices(const DeviceName& request,
                                 const std::vector<DeviceName>& devices) {
  std::vector<int> out;
  for (size_t d = 0; d < devices.size(); ++d) {
    if (request.Matches(devices[d])) out.push_back(static_cast<int>(d));
  }
  return out;
}

absl::Status FindCandidates(const std::vector<DeviceName>& requests,
                            const std::vector<DeviceName>& devices,
                            const std::vector<std::string>& device_names,
                            const PlacerOptions& options, Group* group) {
  group->candidates = MatchingDevices(group->request, devices);
  if (!group->candidates.empty()) return absl::OkStatus();
  if (options.allow_soft_placement) {
    DeviceName relaxed = group->request;
    for (int level = 0; level < 4 && group->candidates.empty(); ++level) {
      if (level == 0) relaxed.id.reset();
      if (level == 1) relaxed.type.reset();
      if (level == 2) {
        relaxed.task.reset();
        relaxed.replica.reset();
      }
      if (level == 3) relaxed.job.reset();
      group->candidates = MatchingDevices(relaxed, devices);
    }
    return absl::OkStatus();
  }
  const Node* first = nullptr;
  std::vector<std::string> asks;
  for (const Node* n : group->members) {
    if (requests[n->id()].empty()) continue;
    if (first == nullptr) first = n;
    asks.push_back(absl::StrCat(n->DebugName(), " requests '", n->requested_device(), "'"));
  }
  std::string why =
      asks.size() > 1
          ? absl::StrCat(" (merged from its colocation group: ", absl::StrJoin(asks, ", "), ")")
          : "";
  return absl::InvalidArgumentError(absl::StrCat(
      "cannot place ", first->DebugName(), ": no device matches '", group->request.ToString(), "'",
      why, "; the devices are ", absl::StrJoin(device_names, ", "),
      " (allow_soft_placement would fall back to a matching one)"));
}

// The transfer structure of a graph, for costing placements incrementally.
class TransferModel {
 public:
  TransferModel(const Graph& graph, const CostModel& cost, int num_devices)
      : sources_of_node_(graph.num_nodes()), seen_(num_devices, 0) {
    for (const Node* n : graph.nodes()) {
      for (int o = 0; o < n->num_outputs(); ++o) {
        Source s{n->id(),
                 cost.transfer_latency_ns + EstimateOutputBytes(*n, o, cost.assumed_unknown_dim) /
                                                cost.transfer_bytes_per_ns,
                 EstimateOutputBytes(*n, o, cost.assumed_unknown_dim),
                 {}};
        for (const OutEdge& e : n->out_edges()) {
          if (!e.is_control() && e.src_output == o) s.consumers.push_back(e.dst->id());
        }
        if (!s.consumers.empty()) sources_.push_back(std::move(s));
      }
      Source c{n->id(), cost.transfer_latency_ns, 0, {}};
      for (const OutEdge& e : n->out_edges()) {
        if (e.is_control()) c.consumers.push_back(e.dst->id());
      }
      if (!c.consumers.empty()) sources_.push_back(std::move(c));
    }
    for (size_t s = 0; s < sources_.size(); ++s) {
      sources_of_node_[sources_[s].node].push_back(static_cast<int>(s));
      for (int c : sources_[s].consumers) sources_of_node_[c].push_back(static_cast<int>(s));
    }
  }

  // Sources whose cost depends on where the nodes of `members` go.
  std::vector<int> SourcesTouching(const std::vector<const Node*>& members) const {
    std::vector<int> out;
    for (const Node* m : members) {
      out.insert(out.end(), sources_of_node_[m->id()].begin(), sources_of_node_[m->id()].end());
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  }

  // Cost of one source under `device_of` (-1: not placed yet, ignored). Counts one transfer per
  // distinct destination device, as the partitioner makes them.
  double Cost(int s, const std::vector<int>& device_of, int64_t* transfers = nullptr,
              double* bytes = nullptr) {
    const Source& src = sources_[s];
    int from = device_of[src.node];
    if (from < 0) return 0;
    ++stamp_;
    int n = 0;
    for (int c : src.consumers) {
      int to = device_of[c];
      if (to < 0 || to == from || seen_[to] == stamp_) continue;
      seen_[to] = stamp_;
      ++n;
    }
    if (transfers) *transfers += n;
    if (bytes) *bytes += n * src.bytes;
    return n * src.ns;
  }
  double Cost(const std::vector<int>& sources, const std::vector<int>& device_of) {
    double total = 0;
    for (int s : sources) total += Cost(s, device_of);
    return total;
  }
  int num_sources() const { return static_cast<int>(sources_.size()); }

 private:
  struct Source {
    int node;
    double ns;     // Time of one transfer.
    double bytes;  // 0 for control.
    std::vector<int> consumers;
  };
  std::vector<Source> sources_;
  std::vector<std::vector<int>> sources_of_node_;  // Sources a node produces or consumes.
  std::vector<int> seen_;
  int stamp_ = 0;
};

// Per-node times the scheduler needs.
struct Timing {
  Timing(const Graph& graph, const CostModel& cost)
      : compute(graph.num_nodes()), transfer(graph.num_nodes()) {
    for (const Node* n : graph.nodes()) {
      NodeCost c = EstimateNodeCost(*n, cost.assumed_unknown_dim);
      compute[n->id()] = c.flops / cost.flops_per_ns + c.bytes / cost.memory_bytes_per_ns;
      for (int o = 0; o < n->num_outputs(); ++o) {
        transfer[n->id()].push_back(cost.transfer_latency_ns +
                                    EstimateOutputBytes(*n, o, cost.assumed_unknown_dim) /
                                        cost.transfer_bytes_per_ns);
      }
    }
    latency = cost.transfer_latency_ns;
  }
  std::vector<double> compute;                // By node id.
  std::vector<std::vector<double>> transfer;  // By node id and output.
  double latency = 0;                         // Of a control transfer.
};

// List scheduling in topological order: when `n` would finish on device `d`, given when the
// device is free and when its placed inputs arrive there. Inputs not placed yet count as ready.
double FinishTime(const Node* n, int d, const Timing& timing, const std::vector<int>& device_of,
                  const std::vector<double>& finish, const std::vector<double>& ready) {
  double start = ready[d];
  for (const Endpoint& in : n->inputs()) {
    int from = device_of[in.node->id()];
    if (from < 0) continue;
    double arrival =
        finish[in.node->id()] + (from == d ? 0 : timing.transfer[in.node->id()][in.index]);
    start = std::max(start, arrival);
  }
  for (const Node* c : n->control_inputs()) {
    int from = device_of[c->id()];
    if (from < 0) continue;
    start = std::max(start, finish[c->id()] + (from == d ? 0 : timing.latency));
  }
  return start + timing.compute[n->id()];
}

// Predicted step time of a complete placement.
double Makespan(const Graph& graph, const Timing& timing, const std::vector<int>& device_of,
                int num_devices) {
  std::vector<double> finish(graph.num_nodes(), 0), ready(num_devices, 0);
  double makespan = 0;
  for (const Node* n : graph.TopologicalOrder()) {
    int d = device_of[n->id()];
    finish[n->id()] = FinishTime(n, d, timing, device_of, finish, ready);
    ready[d] = finish[n->id()];
    makespan = std::max(makespan, finish[n->id()]);
  }
  return makespan;
}

// Automatic placement of the groups with several candidates (see the header).
void Balance(const Graph& graph, const PlacerOptions& options, int num_devices,
             const std::vector<int>& group_of, std::vector<Group>* groups,
             std::vector<int>* device_of) {
  auto assign = [&](int g, int d) {
    for (const Node* n : (*groups)[g].members) (*device_of)[n->id()] = d;
  };
  bool any_free = false;
  for (size_t g = 0; g < groups->size(); ++g) {
    const Group& group = (*groups)[g];
    if (group.candidates.size() == 1 || !options.auto_balance) {
      assign(static_cast<int>(g), group.candidates[0]);
    } else {
      any_free = true;
    }
  }
  if (!any_free) return;
  // Free sources: no compute and no inputs from outside their group.
  std::vector<bool> deferred(groups->size(), false);
  for (size_t g = 0; g < groups->size(); ++g) {
    const Group& group = (*groups)[g];
    if (group.candidates.size() == 1 || group.cost_ns > 0) continue;
    bool source = true;
    for (const Node* n : group.members) {
      for (const Endpoint& in : n->inputs())
        source &= group_of[in.node->id()] == static_cast<int>(g);
      for (const Node* c : n->control_inputs()) source &= group_of[c->id()] == static_cast<int>(g);
    }
    deferred[g] = source;
  }
  Timing timing(graph, options.cost);
  std::vector<double> finish(graph.num_nodes(), 0), ready(num_devices, 0);
  for (const Node* n : graph.TopologicalOrder()) {
    int g = group_of[n->id()];
    if (deferred[g]) continue;
    int d = (*device_of)[n->id()];
    if (d < 0) {
      // Earliest finish; ties go to the device that is free sooner, then to the earlier one.
      double best = 0;
      for (int c : (*groups)[g].candidates) {
        double t = FinishTime(n, c, timing, *device_of, finish, ready);
        if (d < 0 || t < best - 1e-9 * (1 + best) ||
            (t <= best + 1e-9 * (1 + best) && ready[c] < ready[d])) {
          best = t;
          d = c;
        }
      }
      assign(g, d);
    }
    finish[n->id()] = FinishTime(n, d, timing, *device_of, finish, ready);
    ready[d] = finish[n->id()];
  }
  // Free sources go where their consumers need the fewest transfers.
  TransferModel transfers(graph, options.cost, num_devices);
  for (size_t g = 0; g < groups->size(); ++g) {
    if (!deferred[g]) continue;
    std::vector<int> touching = transfers.SourcesTouching((*groups)[g].members);
    double best = 0;
    int best_d = -1;
    for (int c : (*groups)[g].candidates) {
      assign(static_cast<int>(g), c);
      double cost = transfers.Cost(touching, *device_of);
      if (best_d < 0 || cost < best - 1e-9 * (1 + best)) {
        best = cost;
        best_d = c;
      }
    }
    assign(static_cast<int>(g), best_d);
  }
}

}  // namespace

double EstimateOutputBytes(const Node& node, int index, int64_t assumed_unknown_dim) {
  return Elements(node.output_shape(index), assumed_unknown_dim) *
         static_cast<double>(DTypeSize(node.output_type(index)));
}

NodeCost EstimateNodeCost(const Node& node, int64_t unknown) {
  NodeCost cost;
  if (IsFreeOp(node.op())) return cost;
  double largest = 0;
  for (const Endpoint& in : node.inputs()) {
    double e = Elements(in.node->output_shape(in.index), unknown);
    largest = std::max(largest, e);
    cost.bytes += e * DTypeSize(in.node->output_type(in.index));
  }
  for (int o = 0; o < node.num_outputs(); ++o) {
    largest = std::max(largest, Elements(node.output_shape(o), unknown));
    cost.bytes += EstimateOutputBytes(node, o, unknown);
  }
  cost.flops = largest * (IsTranscendental(node.op()) ? 5 : 1);
  if (node.op() == "MatMul" && node.num_inputs() == 2) {
    const TensorShape& a = node.input(0).node->output_shape(node.input(0).index);
    const TensorShape& out = node.output_shape(0);
    if (a.rank() == 2 && out.rank() == 2) {
      bool ta = node.GetAttr<bool>("transpose_a").value_or(false);
      auto dim = [unknown](int64_t d) { return static_cast<double>(d < 0 ? unknown : d); };
      cost.flops = 2 * dim(out.dim(0)) * dim(out.dim(1)) * dim(a.dim(ta ? 0 : 1));
    }
  }
  return cost;
}

absl::StatusOr<Placement> PlaceGraph(const Graph& graph, const std::vector<std::string>& devices,
                                     const PlacerOptions& options) {
  if (devices.empty()) return absl::InvalidArgumentError("the placer needs at least one device");
  Placement placement;
  std::vector<DeviceName> parsed;
  for (const std::string& d : devices) {
    SLUICE_ASSIGN_OR_RETURN(DeviceName name, DeviceName::Parse(d));
    if (!name.IsFullySpecified()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "device '", d, "' is not a full device name (/job:NAME/task:N/device:TYPE:ID)"));
    }
    std::string canonical = name.ToString();
    if (std::find(placement.devices.begin(), placement.devices.end(), canonical) !=
        placement.devices.end()) {
      return absl::InvalidArgumentError(absl::StrCat("device '", canonical, "' is listed twice"));
    }
    placement.devices.push_back(std::move(canonical));
    parsed.push_back(std::move(name));
  }

  const int n = graph.num_nodes();
  std::vector<DeviceName> requests(n);
  for (const Node* node : graph.nodes()) {
    absl::StatusOr<DeviceName> r = DeviceName::Parse(node->requested_device());
    if (!r.ok()) return AnnotateStatus(r.status(), node->DebugName());
    requests[node->id()] = *std::move(r);
  }
  ColocationGraph coloc(n);
  SLUICE_RETURN_IF_ERROR(BuildColocation(graph, options, &coloc));

  std::vector<Group> groups;
  std::vector<int> group_of(n, -1);
  absl::flat_hash_map<int, int> group_of_root;
  for (const Node* node : graph.nodes()) {  // Id order: groups ordered by their first node.
    int root = coloc.Find(node->id());
    auto [it, inserted] = group_of_root.emplace(root, static_cast<int>(groups.size()));
    if (inserted) groups.emplace_back();
    groups[it->second].members.push_back(node);
    group_of[node->id()] = it->second;
  }
  for (Group& g : groups) {
    SLUICE_RETURN_IF_ERROR(MergeRequests(requests, &coloc, &g));
    SLUICE_RETURN_IF_ERROR(FindCandidates(requests, parsed, placement.devices, options, &g));
    for (const Node* m : g.members) {
      NodeCost c = EstimateNodeCost(*m, options.cost.assumed_unknown_dim);
      g.cost_ns += c.flops / options.cost.flops_per_ns + c.bytes / options.cost.memory_bytes_per_ns;
    }
  }
  placement.device_of.assign(n, -1);
  Balance(graph, options, static_cast<int>(parsed.size()), group_of, &groups, &placement.device_of);
  return placement;
}

absl::Status ApplyPlacement(const Placement& placement, Graph* graph) {
  if (static_cast<int>(placement.device_of.size()) != graph->num_nodes()) {
    return absl::InvalidArgumentError("the placement is for another graph");
  }
  for (const Node* n : graph->nodes()) {
    SLUICE_RETURN_IF_ERROR(graph->SetAssignedDevice(n, placement.DeviceOf(n)));
  }
  return absl::OkStatus();
}

PlacementCost EvaluatePlacement(const Graph& graph, const Placement& placement,
                                const CostModel& cost) {
  PlacementCost out;
  out.compute_ns.assign(placement.devices.size(), 0);
  for (const Node* n : graph.nodes()) {
    NodeCost c = EstimateNodeCost(*n, cost.assumed_unknown_dim);
    out.compute_ns[placement.DeviceIndexOf(n)] +=
        c.flops / cost.flops_per_ns + c.bytes / cost.memory_bytes_per_ns;
  }
  TransferModel transfers(graph, cost, static_cast<int>(placement.devices.size()));
  for (int s = 0; s < transfers.num_sources(); ++s) {
    out.transfer_ns +=
        transfers.Cost(s, placement.device_of, &out.num_transfers, &out.transfer_bytes);
  }
  out.makespan_ns = Makespan(graph, Timing(graph, cost), placement.device_of,
                             static_cast<int>(placement.devices.size()));
  return out;
}

}  // namespace sluice
