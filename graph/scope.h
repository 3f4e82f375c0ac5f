// The C++ DSL: a Scope says where new nodes go (graph, name scope, device, control
// dependencies) and collects the first error; op functions (ops/*.h) take a Scope and return
// typed Outputs. Shape inference runs as each node is added, so an error carries the source
// line that built the node. Scopes are cheap values that share one graph; building is
// single-threaded.
//
//   Scope root = ops::NewRootScope();   // Scope::NewRootScope() once the op library registered
//   Output x = Placeholder(root.WithOpName("x"), DType::kFloat32, TensorShape({-1, 4}));
//   Scope layer = root.NewSubScope("dense");
//   Output y = Relu(layer, MatMul(layer, x, w));        // node "dense/Relu"
//   SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<const Graph> graph, root.Finalize());
#ifndef SLUICE_GRAPH_SCOPE_H_
#define SLUICE_GRAPH_SCOPE_H_

#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "graph/graph.h"

namespace sluice {

// Where in the user's code a node was built; captured by default arguments.
struct SourceLocation {
  const char* file = "";
  int line = 0;
  static SourceLocation Current(const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
    return SourceLocation{file, line};
  }
  std::string ToString() const;
};

// A typed handle on one output of a node. Default-constructed (or produced after an error) it
// is invalid, and op functions given an invalid input add nothing.
class Output {
 public:
  Output() = default;
  Output(const Node* node, int index) : node_(node), index_(index) {}
  const Node* node() const { return node_; }
  int index() const { return index_; }
  bool valid() const { return node_ != nullptr; }
  DType dtype() const { return node_->output_type(index_); }
  const TensorShape& shape() const { return node_->output_shape(index_); }
  std::string name() const;  // "node:index"
  Endpoint endpoint() const { return Endpoint{node_, index_}; }

 private:
  const Node* node_ = nullptr;
  int index_ = 0;
};

// An op function's input: an Output, or a constant that becomes a Const node.
class Input {
 public:
  Input(Output output) : output_(output) {}
  Input(const Tensor& value) : value_(value), is_constant_(true) {}
  Input(float v) : value_(Tensor::Scalar<float>(v)), is_constant_(true) {}
  Input(double v) : value_(Tensor::Scalar<double>(v)), is_constant_(true) {}
  Input(int32_t v) : value_(Tensor::Scalar<int32_t>(v)), is_constant_(true) {}
  Input(int64_t v) : value_(Tensor::Scalar<int64_t>(v)), is_constant_(true) {}
  Input(std::initializer_list<float> v)
      : value_(Tensor::FromVector<float>(v)), is_constant_(true) {}
  // Integer literals such as {2, 3} (shapes, axes) become int32 tensors.
  Input(std::initializer_list<int> v)
      : value_(Tensor::FromVector<int32_t>(std::vector<int32_t>(v))), is_constant_(true) {}
  Input(std::initializer_list<int64_t> v)
      : value_(Tensor::FromVector<int64_t>(v)), is_constant_(true) {}

  bool is_constant() const { return is_constant_; }
  const Output& output() const { return output_; }
  const Tensor& value() const { return value_; }

 private:
  Output output_;
  Tensor value_;
  bool is_constant_ = false;
};

class Scope {
 public:
  static Scope NewRootScope(const OpRegistry* registry = OpRegistry::Global());

  // The next node built with the returned scope gets this name (under the name scope).
  Scope WithOpName(absl::string_view name) const;
  // Nodes built with the returned scope are named "<prefix>/<name>/...".
  Scope NewSubScope(absl::string_view name) const;
  // Nodes built with the returned scope request this device.
  Scope WithDevice(absl::string_view device) const;
  // Nodes built with the returned scope run after these.
  Scope WithControlDependencies(const std::vector<Output>& deps) const;
  Scope WithControlDependencies(const std::vector<const Node*>& deps) const;

  bool ok() const { return state_->status.ok(); }
  // The first error any scope sharing this graph recorded.
  absl::Status status() const { return state_->status; }
  Graph* graph() const { return state_->graph.get(); }

  // Returns the first recorded error, or finalises the graph and hands it over. Afterwards no
  // node can be added through any scope of this graph.
  absl::StatusOr<std::shared_ptr<const Graph>> Finalize() const;

  // For op functions: adds a node of `op` with these inputs and attributes, creating Const nodes
  // for constant inputs. On failure records the error (annotated with the node name and `loc`)
  // and returns nullptr. Does nothing and returns nullptr once the scope holds an error.
  const Node* AddNode(absl::string_view op, const std::vector<Input>& inputs, AttrMap attrs,
                      SourceLocation loc) const;
  // Records an error (first one wins).
  void UpdateStatus(const absl::Status& status) const;

 private:
  struct State {
    std::shared_ptr<Graph> graph;
    absl::Status status;
  };
  explicit Scope(std::shared_ptr<State> state) : state_(std::move(state)) {}
  std::string NodeNameFor(absl::string_view op) const;

  std::shared_ptr<State> state_;
  std::string name_prefix_;  // "outer/inner" or empty.
  std::string op_name_;      // Explicit name for the next node.
  std::string device_;
  std::vector<const Node*> control_deps_;
};

// Convenience for op functions with one output: Output(node, 0), or invalid on error.
inline Output SingleOutput(const Node* node) { return node ? Output(node, 0) : Output(); }
// All outputs of a node, or an empty vector on error.
std::vector<Output> AllOutputs(const Node* node);

}  // namespace sluice

#endif  // SLUICE_GRAPH_SCOPE_H_
