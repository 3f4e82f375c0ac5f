// The placer: chooses the device every node of a graph runs on.
//
// Constraints, strongest first:
//   1. Colocation. Nodes in one colocation group share a device. Groups come from
//      - variables: every Variable node naming one variable (its "shared_name", default the node
//        name), and every op that takes such a node as a reference input (one it updates in
//        place: an input its OpDef declares "Ref(T)", such as input 0 of Assign or of the
//        optimizer updates) -- the variable's value lives in one device's ResourceMgr, so its
//        nodes and updaters must be there. Only the OpDef decides, so every caller (a local
//        Session, the distributed master) places one graph the same way;
//      - a string attribute "_class" of the form "loc:@other_node" (several separated by ',');
//      - PlacerOptions::colocate, lists of node names.
//   2. Device requests (Node::requested_device()), full or partial ("/job:ps", "/device:cpu:1").
//      The requests of a group are merged; a conflict is an error that names both nodes and the
//      chain of colocation links between them. A request no device matches is an error naming
//      the node and the devices, unless allow_soft_placement: then the request is relaxed (the
//      device id, then the device type, then task and replica, then the job are dropped) until
//      some device matches.
//   3. Automatic placement of what is left free, by list scheduling: each node gets an
//      estimated compute time from its shapes (FLOPs and bytes touched, see EstimateNodeCost);
//      walking the graph in topological order, a free group goes to the device where its first
//      node would finish earliest, given when that device is free and when the node's inputs
//      arrive there (a cross-device input costs CostModel latency + bytes / bandwidth). So
//      independent work spreads over the devices, dependent chains stay together, and large
//      tensors do not cross devices unless the parallelism pays for it. Free sources (constants,
//      placeholders, variables: no inputs, no compute) then go where their consumers need the
//      fewest transfer bytes. With auto_balance off, a free group goes to the first device that
//      matches.
// Deterministic: the same graph, devices and options give the same placement.
// Thread-safety: stateless functions; the graph is only read.
//
//   PlacerOptions opts;
//   SLUICE_ASSIGN_OR_RETURN(Placement p, PlaceGraph(*graph, {"/job:localhost/task:0/device:cpu:0",
//                                                     "/job:localhost/task:0/device:cpu:1"},
//                                                     opts));
//   p.DeviceOf(node);   // "/job:localhost/task:0/device:cpu:1"
#ifndef SLUICE_GRAPH_PLACER_H_
#define SLUICE_GRAPH_PLACER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "graph/graph.h"

namespace sluice {

// The device of every node of one graph.
struct Placement {
  std::vector<std::string> devices;  // Canonical full names, in the order given to the placer.
  std::vector<int> device_of;        // By node id: index into `devices`.

  const std::string& DeviceOf(const Node* node) const { return devices[device_of[node->id()]]; }
  int DeviceIndexOf(const Node* node) const { return device_of[node->id()]; }
};

// Rough speeds that turn FLOPs and bytes into time, for automatic placement.
struct CostModel {
  double flops_per_ns = 10;            // ~10 GFLOP/s per device.
  double memory_bytes_per_ns = 10;     // ~10 GB/s of memory traffic per device.
  double transfer_bytes_per_ns = 2;    // ~2 GB/s between devices.
  double transfer_latency_ns = 10000;  // Fixed cost of one transfer (a thread hand-off, an RPC).
  int64_t assumed_unknown_dim = 32;    // Size assumed for unknown dimensions (batch).
};

struct NodeCost {
  double flops = 0;
  double bytes = 0;  // Bytes read and written.
};
// FLOPs and bytes of one run of `node`, from its output and input shapes: MatMul 2*m*k*n,
// transcendental elementwise ops 5 per element, other ops one per element of their largest
// operand; graph plumbing (Const, Placeholder, Variable, Identity, NoOp, Reshape, Send/Recv) is
// free.
NodeCost EstimateNodeCost(const Node& node, int64_t assumed_unknown_dim = 32);
// Bytes of output `index` of `node`, unknown dimensions taken as `assumed_unknown_dim`.
double EstimateOutputBytes(const Node& node, int index, int64_t assumed_unknown_dim = 32);

struct PlacerOptions {
  bool allow_soft_placement = false;
  bool auto_balance = true;
  // Extra colocation groups, by node name.
  std::vector<std::vector<std::string>> colocate;
  CostModel cost;
};

// Places every node of `graph` on one of `devices` (full names; parsed and canonicalised).
absl::StatusOr<Placement> PlaceGraph(const Graph& graph, const std::vector<std::string>& devices,
                                     const PlacerOptions& options = {});

// Records `placement` in the nodes of an unfinalised graph (Node::assigned_device()).
absl::Status ApplyPlacement(const Placement& placement, Graph* graph);

// What a placement costs under `cost`: compute time per device, the transfers it implies, and
// the step time that list scheduling in topological order predicts.
struct PlacementCost {
  std::vector<double> compute_ns;  // Per device.
  int64_t num_transfers = 0;       // Data (per tensor and destination device) and control.
  double transfer_bytes = 0;
  double transfer_ns = 0;  // Sum over transfers.
  double makespan_ns = 0;  // Predicted step time; what the placer minimises greedily.
};
PlacementCost EvaluatePlacement(const Graph& graph, const Placement& placement,
                                const CostModel& cost = {});

}  // namespace sluice

#endif  // SLUICE_GRAPH_PLACER_H_
