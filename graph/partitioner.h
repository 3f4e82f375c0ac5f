// The partitioner: cuts a placed graph into one finalised graph per device, joined by _Send /
// _Recv node pairs that a Rendezvous connects at run time.
//
//   - Every node to run lands in exactly one partition, the one of its device, under its own
//     name, with its attributes and requested device; Node::assigned_device() is its device.
//   - A tensor consumed on other devices is sent once per destination device, however many
//     consumers it has there: src -> _Send (on src's device) ... _Recv (on the destination) ->
//     every consumer there.
//   - A control edge across devices becomes a control-only transfer: src -ctl-> Const (an empty
//     bool tensor) -> _Send ... _Recv -ctl-> dst, again once per (src, destination device).
//   - _Send/_Recv carry attributes tensor_name ("src:0" for data, "^src" for control),
//     send_device, recv_device, client_terminated (false), T and shape. The rendezvous key of a
//     transfer is built from (step id, send_device, recv_device, tensor_name, micro-batch), so it
//     is unique per step and per edge.
//   - Fed nodes do not run: each fed output becomes a Placeholder of the same dtype and shape
//     (named like the node when it has one output), and the fed node's inputs are cut off.
// Thread-safety: stateless; the input graph is only read. The result is immutable.
//
//   SLUICE_ASSIGN_OR_RETURN(Placement p, PlaceGraph(*graph, devices));
//   SLUICE_ASSIGN_OR_RETURN(PartitionedGraph parts, PartitionGraph(*graph, p));
//   for (const GraphPartition& part : parts.partitions) RunOn(part.device, *part.graph);
#ifndef SLUICE_GRAPH_PARTITIONER_H_
#define SLUICE_GRAPH_PARTITIONER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "graph/graph.h"
#include "graph/placer.h"

namespace sluice {

inline constexpr char kSendOp[] = "_Send";
inline constexpr char kRecvOp[] = "_Recv";

struct PartitionOptions {
  // The nodes to partition, e.g. PruneForFetches(...); empty: every node of the graph. Every
  // input and control input of a chosen node that is not fed must be chosen too.
  std::vector<const Node*> nodes;
  // Outputs whose values the caller supplies; their nodes become Placeholders.
  std::vector<Endpoint> feeds;
};

struct GraphPartition {
  std::string device;
  int device_index = 0;  // Into Placement::devices.
  std::shared_ptr<const Graph> graph;
};

// One Send/Recv pair.
struct Transfer {
  std::string tensor_name;    // "src:0", or "^src" for a control transfer.
  const Node* src = nullptr;  // In the original graph.
  int src_output = -1;        // -1 for control.
  int src_device = 0;
  int dst_device = 0;
  DType dtype = DType::kBool;
  TensorShape shape;
  std::string send_node;  // Names in the source and destination partitions.
  std::string recv_node;
  bool is_control() const { return src_output < 0; }
};

class PartitionedGraph {
 public:
  // Partitions with at least one node, in device order.
  std::vector<GraphPartition> partitions;
  std::vector<Transfer> transfers;

  // Where output `e` of the original graph is computed (or fed): a partition index and the
  // endpoint in that partition's graph. NotFound when `e`'s node was not partitioned.
  absl::StatusOr<std::pair<int, Endpoint>> Locate(const Endpoint& e) const;
  // The partition and copy of an original node (a fed node: the stand-in of its first output).
  absl::StatusOr<std::pair<int, const Node*>> LocateNode(const Node* node) const;

  // Implementation detail, filled by PartitionGraph: where each original node went.
  struct Located {
    int partition = -1;
    const Node* node = nullptr;
    std::vector<Endpoint> outputs;
  };
  std::vector<Located> located;  // By original node id.
};

absl::StatusOr<PartitionedGraph> PartitionGraph(const Graph& graph, const Placement& placement,
                                                const PartitionOptions& options = {});

}  // namespace sluice

#endif  // SLUICE_GRAPH_PARTITIONER_H_
