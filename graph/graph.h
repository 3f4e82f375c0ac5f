// Graph: the dataflow IR. Nodes run ops; data edges connect an output `node:index` to an input;
// control edges only order nodes. Nodes are added through AddNode(), which validates the op,
// attributes, input dtypes and runs shape inference; Finalize() checks the whole graph and makes
// it immutable. A finalised graph is safe to share between threads; building is single-threaded.
//
//   Graph g(OpRegistry::Global());
//   NodeSpec spec{.name = "a", .op = "Const", .attrs = {{"value", AttrValue(t)}, ...}};
//   SLUICE_ASSIGN_OR_RETURN(Node* a, g.AddNode(spec));
//   SLUICE_RETURN_IF_ERROR(g.Finalize());
//   for (const Node* n : g.TopologicalOrder()) ...
//
// Invariants:
//   - node ids are dense, 0..num_nodes()-1, and a node's inputs always have smaller ids when the
//     graph was built through AddNode (inputs must already exist), so id order is topological.
//   - every data input of a node has the dtype its OpDef demands.
//   - out_edges() of a node mirror the inputs and control inputs of its consumers.
#ifndef SLUICE_GRAPH_GRAPH_H_
#define SLUICE_GRAPH_GRAPH_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "graph/attr_value.h"
#include "graph/op_def.h"

namespace sluice {

// Node names longer than this are refused (they travel in rendezvous keys and in error messages
// that cross gRPC, whose metadata is small).
inline constexpr size_t kMaxNodeNameBytes = 1024;
// InvalidArgument quoting the start of a name over kMaxNodeNameBytes.
absl::Status NameTooLong(absl::string_view name);

class Node;

// One output of a node.
struct Endpoint {
  const Node* node = nullptr;
  int index = 0;
  std::string DebugString() const;  // "name:index"
  bool operator==(const Endpoint& o) const { return node == o.node && index == o.index; }
};

// A consumer of one of a node's outputs (input_index >= 0) or a control successor (-1).
struct OutEdge {
  const Node* dst = nullptr;
  int src_output = -1;  // -1 for control edges.
  int input_index = -1;
  bool is_control() const { return input_index < 0; }
};

// What AddNode needs to create a node.
struct NodeSpec {
  std::string name;
  std::string op;
  std::vector<Endpoint> inputs;
  std::vector<const Node*> control_inputs;
  AttrMap attrs;
  std::string device;           // Requested device (may be partial or empty).
  std::string source_location;  // "file.cc:42" of the code that built the node, for errors.
};

// Checks the value fed for feeds[i] (its dtype and shape against the graph's, and that no
// earlier feed names the same output); InvalidArgument naming the output otherwise. Every
// runner of graphs (the local Session, the distributed master) checks feeds with it.
absl::Status CheckFeed(const std::vector<Endpoint>& feeds, size_t i, DType dtype,
                       const TensorShape& shape);

class Node {
 public:
  int id() const { return id_; }
  const std::string& name() const { return name_; }
  const std::string& op() const { return op_def_->name; }
  const OpDef& op_def() const { return *op_def_; }
  const AttrMap& attrs() const { return attrs_; }
  template <typename T>
  absl::StatusOr<T> GetAttr(absl::string_view name) const {
    return sluice::GetAttr<T>(attrs_, name);
  }

  int num_inputs() const { return static_cast<int>(inputs_.size()); }
  const Endpoint& input(int i) const { return inputs_[i]; }
  const std::vector<Endpoint>& inputs() const { return inputs_; }
  const std::vector<const Node*>& control_inputs() const { return control_inputs_; }
  const std::vector<OutEdge>& out_edges() const { return out_edges_; }
  // The OpDef argument input `index` binds to (lists expand by their length attribute), or
  // nullptr for an index past the signature.
  const ArgDef* input_arg(int index) const;
  // Whether input `index` is declared "Ref(T)": a variable the op reads or updates in place.
  bool IsRefInput(int index) const;

  int num_outputs() const { return static_cast<int>(output_types_.size()); }
  DType output_type(int i) const { return output_types_[i]; }
  const TensorShape& output_shape(int i) const { return output_shapes_[i]; }
  const std::vector<DType>& output_types() const { return output_types_; }

  const std::string& requested_device() const { return requested_device_; }
  const std::string& assigned_device() const { return assigned_device_; }
  const std::string& source_location() const { return source_location_; }

  // "node 'name' (Op)", the prefix every error about this node starts with.
  std::string DebugName() const;

 private:
  friend class Graph;
  int id_ = -1;
  std::string name_;
  const OpDef* op_def_ = nullptr;
  AttrMap attrs_;
  std::vector<Endpoint> inputs_;
  std::vector<const Node*> control_inputs_;
  std::vector<OutEdge> out_edges_;
  std::vector<DType> output_types_;
  std::vector<TensorShape> output_shapes_;
  std::string requested_device_;
  std::string assigned_device_;
  std::string source_location_;
};

class Graph {
 public:
  explicit Graph(const OpRegistry* registry = OpRegistry::Global());
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // Validates `spec` (known op, unique name, attributes, input count and dtypes), fills
  // attribute defaults, infers output dtypes and shapes. Errors name the node and op.
  absl::StatusOr<Node*> AddNode(NodeSpec spec);
  // Checks the graph is acyclic and freezes it: AddNode fails afterwards.
  absl::Status Finalize();
  bool finalized() const { return finalized_; }

  // Placement (set before Finalize by the placer).
  absl::Status SetAssignedDevice(const Node* node, std::string device);

  int num_nodes() const { return static_cast<int>(nodes_.size()); }
  const Node* node(int id) const { return nodes_[id].get(); }
  const Node* FindNode(absl::string_view name) const;
  std::vector<const Node*> nodes() const;
  // Parses "name" or "name:3" into an endpoint; NotFound / InvalidArgument naming the text.
  absl::StatusOr<Endpoint> ParseEndpoint(absl::string_view text) const;
  // `prefix` if no node has that name yet, else `prefix_1`, `prefix_2`, ...
  std::string UniqueName(absl::string_view prefix) const;
  const OpRegistry* registry() const { return registry_; }

  // Every node, inputs before consumers.
  std::vector<const Node*> TopologicalOrder() const;

 private:
  const OpRegistry* registry_;
  std::vector<std::unique_ptr<Node>> nodes_;
  absl::flat_hash_map<std::string, Node*> by_name_;
  bool finalized_ = false;
};

// Nodes needed to compute `fetches` and run `targets`, in topological order. Nodes whose
// outputs are all fed are treated as sources: their inputs are not needed.
std::vector<const Node*> PruneForFetches(const Graph& graph, const std::vector<Endpoint>& fetches,
                                         const std::vector<const Node*>& targets,
                                         const std::vector<Endpoint>& feeds);

}  // namespace sluice

#endif  // SLUICE_GRAPH_GRAPH_H_
