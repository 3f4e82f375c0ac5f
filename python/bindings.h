// Shared pieces of the `_sluice_core` extension module: the Python handles on graph objects,
// numpy <-> Tensor conversion, and Status -> Python exception mapping. Each Bind* function adds
// one part of the module (see sluice_module.cc). Everything here runs with the GIL held unless a
// function says otherwise.
//
//   ThrowIfError(status);                        // raises sluice.errors.<Code>Error
//   Tensor t = TensorFromArray(py::array(...));  // copies into a new 64-byte-aligned buffer
//   py::object a = ArrayFromTensor(std::move(t));  // hands the buffer over when unshared
#ifndef SLUICE_PYTHON_BINDINGS_H_
#define SLUICE_PYTHON_BINDINGS_H_

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "graph/graph.h"
#include "python/graph_core.h"

namespace sluice {
namespace python {

namespace py = pybind11;

// A Python `Operation`: one node of a graph. `graph` is the Python Graph object, kept alive.
struct PyOperation {
  std::shared_ptr<GraphCore> core;
  py::object graph;
  const Node* node = nullptr;
};

// A Python `Tensor`: one output of a node.
struct PyTensor {
  std::shared_ptr<GraphCore> core;
  py::object graph;
  Endpoint endpoint;
};

// ---- errors (errors_bindings.cc)
// Raises the exception class sluice.errors registered for the status code (RuntimeError before
// registration), constructed as cls(message, code).
[[noreturn]] void ThrowStatus(const absl::Status& status);
inline void ThrowIfError(const absl::Status& status) {
  if (!status.ok()) ThrowStatus(status);
}
template <typename T>
T ValueOrThrow(absl::StatusOr<T> value) {
  if (!value.ok()) ThrowStatus(value.status());
  return *std::move(value);
}
void BindErrors(py::module_& m);

// ---- dtypes and numpy conversion (tensor_conversion.cc)
py::dtype NumpyDType(DType dtype);
absl::StatusOr<DType> DTypeFromNumpy(const py::dtype& dtype);
// A copy of `array` (any strides, native byte order) in a new Tensor.
absl::StatusOr<Tensor> TensorFromArray(const py::array& array);
// A numpy value for `tensor`: a numpy scalar for rank 0, else an ndarray. An unshared buffer is
// handed over without a copy; a shared one (a variable's value, say) is copied, so the result
// never aliases memory the engine may change or that the engine's state depends on.
py::object ArrayFromTensor(Tensor tensor);
// Python value -> Tensor for literal inputs: a numpy array (or numpy scalar) keeps its dtype;
// Python numbers and lists become float64 / int64 / bool with `*default_typed` set, to be
// narrowed by DefaultTypedLiteral (graph_core.h) unless an op needs another dtype.
absl::StatusOr<Tensor> TensorFromPython(const py::handle& value, bool* default_typed);
// TensorFromPython, with Python numbers narrowed: floats -> float32, ints -> int32 (int64 when
// a value needs it), as in TensorFlow.
absl::StatusOr<Tensor> LiteralFromPython(const py::handle& value);
void BindDTypes(py::module_& m);

// ---- graph objects (graph_bindings.cc, attr_conversion.cc)
using CorePtr = std::shared_ptr<GraphCore>;
py::object MakeTensor(const CorePtr& core, const py::object& graph, Endpoint endpoint);
py::object MakeOperation(const CorePtr& core, const py::object& graph, const Node* node);
// The GraphCore of a Python Graph object.
CorePtr CoreOf(const py::object& graph);
// The output a Tensor (or an object with `_as_tensor()`, a Variable) of `core`'s graph stands
// for; TypeError / ValueError otherwise.
Endpoint TensorOf(const CorePtr& core, py::handle value);
// One input value of an op under construction: a tensor of `core`'s graph or a literal.
InputValue ToInputValue(const CorePtr& core, py::handle value, const std::string& op,
                        const std::string& arg);
absl::StatusOr<AttrValue> AttrFromPython(const AttrDef* def, const py::handle& value);
py::object AttrToPython(const AttrValue& value);
absl::StatusOr<TensorShape> ShapeFromPython(const py::handle& value);
py::object ShapeToPython(const TensorShape& shape);
void BindGraph(py::module_& m);

// ---- sessions (session_bindings.cc)
void BindSession(py::module_& m);

// Calls `f` (returning absl::Status) with the GIL released and raises its error.
template <typename F>
void CallWithoutGil(F&& f) {
  absl::Status status;
  {
    py::gil_scoped_release release;
    status = f();
  }
  ThrowIfError(status);
}

// The arguments of one Session.run, by name: sessions run snapshots of the graph
// (GraphCore::Snapshot), whose nodes are copies of the Python objects' nodes.
struct NamedRun {
  std::vector<std::pair<std::string, Tensor>> feeds;
  std::vector<std::string> fetches;
  std::vector<std::string> targets;
};
// feeds: [(Tensor, ndarray)], fetches: [Tensor], targets: [Operation].
NamedRun NamedRunFromPython(const py::list& feeds, const py::list& fetches,
                            const py::list& targets);

// Runs `run` on `session` (a Session or a RemoteSession) with the GIL released; one numpy value
// per fetch.
template <typename SessionT>
py::list RunNamed(SessionT& session, NamedRun run) {
  std::vector<Tensor> outputs;
  CallWithoutGil([&] {
    absl::Status status = session.Run(run.feeds, run.fetches, run.targets, &outputs);
    run.feeds.clear();  // Frees the feed copies before the GIL comes back.
    return status;
  });
  py::list result;
  for (Tensor& t : outputs) result.append(ArrayFromTensor(std::move(t)));
  return result;
}

// One node's trace record as a dict (runtime/exec/step_trace.h's fields).
py::dict NodeStatsDict(const std::string& device, const std::string& node, const std::string& op,
                       int64_t start_ns, int64_t end_ns, uint32_t thread,
                       const std::string& transfer, int64_t bytes);

// ---- variables, gradients, optimizers (training_bindings.cc)
void BindTraining(py::module_& m);

// ---- remote sessions, servers, local clusters (cluster_bindings.cc)
void BindCluster(py::module_& m);

// data_bindings.cc: the data partitioning rules of sluice.data.
void BindData(py::module_& m);

// ---- pipeline schedules and their verifier (pipeline_bindings.cc)
void BindPipeline(py::module_& m);

}  // namespace python
}  // namespace sluice

#endif  // SLUICE_PYTHON_BINDINGS_H_
