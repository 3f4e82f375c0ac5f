// GraphCore: the C++ side of a Python `sluice.Graph`. It owns the graph under construction, the
// stack of name-scope / device / control-dependency frames the Python context managers push,
// and which of its variables are trainable. Python code only names ops, inputs and
// attributes; validation, shape inference, literal constants and naming happen here.
//
// Node names follow the Python (TensorFlow) conventions: an explicit name or an op type is
// placed under the current name scope and made unique with a "_1", "_2", ... suffix; a name
// scope is made unique the same way unless it ends with "/". A failed AddOp leaves the graph as
// it was, so building can go on after an error (unlike a Scope, which keeps its first error).
//
// Thread-compatibility: building is single-threaded (the Python bindings hold the GIL). Sessions
// run Snapshot()s, finalised copies, so ops can still be added after a run; after Finalize()
// the graph itself is immutable and shared with sessions.
//
//   auto core = std::make_shared<GraphCore>();
//   core->PushNameScope("dense");
//   SLUICE_ASSIGN_OR_RETURN(const Node* mm, core->AddOp("MatMul", {{x}, {w}}, {}, "",
//   "model.py:3")); core->PopFrame(); SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<const Graph> g,
//   core->Finalize());
#ifndef SLUICE_PYTHON_GRAPH_CORE_H_
#define SLUICE_PYTHON_GRAPH_CORE_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "graph/graph.h"
#include "graph/scope.h"

namespace sluice {
namespace python {

// One value given for one input argument: an existing output or a literal constant.
struct InputValue {
  Endpoint output;  // Used when `literal` is unset.
  bool is_literal = false;
  Tensor literal;
  // A Python number or list, held as float64 / int64 / bool: it takes the dtype the op needs,
  // else DefaultTypedLiteral's.
  bool literal_is_default_typed = false;
};

// The dtype a Python number gets when no op asks for one: float64 -> float32, int64 -> int32
// when every value fits (else int64), as in TensorFlow. Other tensors are returned unchanged.
Tensor DefaultTypedLiteral(const Tensor& wide);

// The values for one argument of an op: one value, or a list for "N * T" arguments.
struct InputArg {
  bool is_list = false;
  std::vector<InputValue> values;
};

class GraphCore : public std::enable_shared_from_this<GraphCore> {
 public:
  GraphCore();
  GraphCore(const GraphCore&) = delete;
  GraphCore& operator=(const GraphCore&) = delete;

  const Graph& graph() const { return *root_.graph(); }
  bool finalized() const { return graph().finalized(); }

  // Frames: each push copies the current frame and changes one thing; PopFrame undoes the
  // last push. PushNameScope returns the new full prefix ("" for the root).
  std::string PushNameScope(const std::string& name);
  void PushDevice(const std::string& device);
  // What a device function is asked about a node to be built: its op type ("" for the nodes of
  // a C++ builder: gradients, optimizer steps), its name when known, and for variables the
  // bytes of their value (-1 otherwise), so a function can balance bytes over ps tasks.
  struct DeviceQuery {
    std::string op_type;
    std::string name;
    int64_t bytes = -1;
  };
  // Devices chosen per node by `choose(query)` (TF1's device functions, e.g.
  // replica_device_setter) until the matching PopFrame.
  void PushDeviceFunction(std::function<std::string(const DeviceQuery&)> choose);
  // Adds `deps` to the control dependencies of new nodes; with `clear`, replaces them.
  void PushControlDependencies(const std::vector<const Node*>& deps, bool clear);
  absl::Status PopFrame();
  const std::string& name_prefix() const { return frames_.back().prefix; }
  const std::string& device() const { return frames_.back().device; }

  // Adds a node of `op`: one InputArg per input argument of the op definition, literals become
  // Const nodes (taking the dtype the op needs when that converts losslessly), list lengths and
  // dtype attributes are inferred. `name` empty: named after the op. Errors start with
  // "node 'name' (Op) built at <source_location>".
  absl::StatusOr<const Node*> AddOp(const std::string& op, const std::vector<InputArg>& inputs,
                                    AttrMap attrs, const std::string& name,
                                    const std::string& source_location);
  // A Const node holding `value`.
  absl::StatusOr<const Node*> AddConst(const Tensor& value, const std::string& name,
                                       const std::string& source_location);
  // The write handle an Assign-family op takes as input 0 for the variable read by `variable`
  // (see ops/state_ops.h: a Variable node of the same name, dtype and shape).
  absl::StatusOr<Endpoint> WriteHandle(const Endpoint& variable,
                                       const std::string& source_location);

  // C++ op functions that take a Scope (variables, gradients, optimizers) build through
  // DslScope(name): the current frame, with the next node named `name` made unique (empty:
  // no explicit name). A Scope keeps its first error for good, so after one such function
  // failed, DslScope fails with FailedPrecondition naming that error; AddOp keeps working.
  // `op_type` picks the device when a device function is active ("Variable" for variables).
  // `bytes`: a variable's (DeviceQuery::bytes).
  absl::StatusOr<Scope> DslScope(const std::string& name, const std::string& what,
                                 const std::string& op_type = "", int64_t bytes = -1) const;
  // The error a C++ op function recorded in the scope, if any.
  absl::Status DslStatus() const { return root_.status(); }
  // The root scope, for read-only helpers such as ops::AllInitializers.
  const Scope& root_scope() const { return root_; }
  // Reserves a unique name scope `name` (or `name_1`, ...) under the current prefix for a C++
  // builder; returns it relative to the prefix, for DslScope(...).NewSubScope(returned).
  std::string ReserveNameScope(const std::string& name);

  // Variables created from Python with trainable=True (optimizer slots are not).
  void MarkTrainable(const Node* variable) { trainable_.insert(variable); }
  bool IsTrainable(const Node* variable) const { return trainable_.contains(variable); }
  // `base` if no node or name scope uses it yet, else `base_1`, `base_2`, ...
  std::string UniqueName(const std::string& base) const;

  // Freezes the graph (once) and shares it; the result keeps this object alive.
  absl::StatusOr<std::shared_ptr<const Graph>> Finalize();
  // What sessions run: a finalised copy of the graph as it is now, while the graph itself stays
  // open for more ops. The same copy is returned until a node is added (the graph itself once
  // it is finalised).
  absl::StatusOr<std::shared_ptr<const Graph>> Snapshot();

 private:
  struct Frame {
    std::string prefix;
    std::string device;
    std::function<std::string(const DeviceQuery&)> device_fn;  // Set: overrides `device`.
    std::vector<const Node*> control_deps;
  };
  // The device the current frame requests for a new node of `op_type`.
  std::string DeviceFor(const DeviceQuery& query) const;
  std::string Qualified(const std::string& name) const;
  absl::StatusOr<Endpoint> LiteralNode(const InputValue& value, DType want,
                                       const std::string& op_name, const std::string& arg_name,
                                       const std::string& source_location);

  Scope root_;
  std::vector<Frame> frames_;  // frames_[0] is the root frame; never empty.
  absl::flat_hash_set<std::string> scope_names_;
  absl::flat_hash_set<const Node*> trainable_;
  std::shared_ptr<const Graph> snapshot_;
  int snapshot_nodes_ = -1;  // graph().num_nodes() when snapshot_ was taken.
};

}  // namespace python
}  // namespace sluice

#endif  // SLUICE_PYTHON_GRAPH_CORE_H_
