// Python classes Graph, Operation and Tensor. The graph lives in C++ (GraphCore); Operation and
// Tensor are handles that keep their Python Graph object alive.
#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "graph/device_name.h"
#include "graph/dot.h"
#include "graph/placer.h"
#include "python/bindings.h"

namespace sluice {
namespace python {

py::object MakeTensor(const CorePtr& core, const py::object& graph, Endpoint e) {
  return py::cast(PyTensor{core, graph, e});
}

py::object MakeOperation(const CorePtr& core, const py::object& graph, const Node* node) {
  return py::cast(PyOperation{core, graph, node});
}

CorePtr CoreOf(const py::object& graph) { return py::cast<CorePtr>(graph); }

namespace {

// One CPU device per task the graph's nodes request ("/job:worker/task:1" ->
// "/job:worker/task:1/device:cpu:0"), or this process's one CPU when none does.
std::vector<std::string> RequestedDevices(const Graph& graph) {
  std::vector<std::string> devices;
  for (const Node* n : graph.nodes()) {
    absl::StatusOr<DeviceName> d = DeviceName::Parse(n->requested_device());
    if (!d.ok() || d->empty()) continue;
    DeviceName full = *d;
    if (!full.job) full.job = "localhost";
    if (!full.task) full.task = 0;
    if (!full.type) full.type = "cpu";
    if (!full.id) full.id = 0;
    full.replica.reset();
    std::string name = full.ToString();
    if (std::find(devices.begin(), devices.end(), name) == devices.end()) devices.push_back(name);
  }
  if (devices.empty()) devices.push_back("/job:localhost/task:0/device:cpu:0");
  return devices;
}

std::string TensorRepr(const PyTensor& t) {
  return absl::StrCat(
      "<sluice.Tensor '", t.endpoint.DebugString(), "' shape=",
      std::string(py::repr(ShapeToPython(t.endpoint.node->output_shape(t.endpoint.index)))),
      " dtype=", DTypeName(t.endpoint.node->output_type(t.endpoint.index)), ">");
}

// Objects such as sluice.Variable stand for a tensor through `_as_tensor()`.
py::object Unwrap(py::handle value) {
  py::object v = py::reinterpret_borrow<py::object>(value);
  if (!py::isinstance<PyTensor>(v) && py::hasattr(v, "_as_tensor")) return v.attr("_as_tensor")();
  return v;
}

void CheckSameGraph(const CorePtr& core, const PyTensor& t) {
  if (t.core != core) {
    throw py::value_error(absl::StrCat("tensor '", t.endpoint.DebugString(),
                                       "' belongs to another graph than the op being built"));
  }
}

}  // namespace

Endpoint TensorOf(const CorePtr& core, py::handle value) {
  py::object v = Unwrap(value);
  if (!py::isinstance<PyTensor>(v)) {
    throw py::type_error(
        absl::StrCat("expected a Tensor or Variable, got ", std::string(py::repr(v))));
  }
  const PyTensor& t = v.cast<const PyTensor&>();
  CheckSameGraph(core, t);
  return t.endpoint;
}

InputValue ToInputValue(const CorePtr& core, py::handle value, const std::string& op,
                        const std::string& arg) {
  py::object v = Unwrap(value);
  InputValue in;
  if (py::isinstance<PyTensor>(v)) {
    const PyTensor& t = v.cast<const PyTensor&>();
    CheckSameGraph(core, t);
    in.output = t.endpoint;
    return in;
  }
  absl::StatusOr<Tensor> literal = TensorFromPython(v, &in.literal_is_default_typed);
  if (!literal.ok()) {
    ThrowStatus(
        absl::Status(literal.status().code(),
                     absl::StrCat("input '", arg, "' of ", op, ": ", literal.status().message())));
  }
  in.is_literal = true;
  in.literal = *std::move(literal);
  return in;
}

namespace {

std::vector<const Node*> NodesOf(const CorePtr& core, const py::iterable& items) {
  std::vector<const Node*> nodes;
  for (py::handle item : items) {
    py::object v = Unwrap(item);
    if (py::isinstance<PyOperation>(v)) {
      const PyOperation& op = v.cast<const PyOperation&>();
      if (op.core != core) throw py::value_error("control dependency from another graph");
      nodes.push_back(op.node);
    } else if (py::isinstance<PyTensor>(v)) {
      const PyTensor& t = v.cast<const PyTensor&>();
      CheckSameGraph(core, t);
      nodes.push_back(t.endpoint.node);
    } else {
      throw py::type_error(absl::StrCat("control dependencies are Operations or Tensors, got ",
                                        std::string(py::repr(v))));
    }
  }
  return nodes;
}

py::object AddOp(const py::object& self, const std::string& op, const py::sequence& inputs,
                 const py::dict& attrs, const std::optional<std::string>& name,
                 const std::string& location) {
  CorePtr core = CoreOf(self);
  const OpDef* def = ValueOrThrow(core->graph().registry()->LookUp(op));
  std::vector<InputArg> args;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const ArgDef* arg = i < def->inputs.size() ? &def->inputs[i] : nullptr;
    const std::string arg_name = arg ? arg->name : absl::StrCat(i);
    InputArg in;
    py::object item = inputs[i];
    if (arg != nullptr && !arg->number_attr.empty()) {
      if (!py::isinstance<py::list>(item) && !py::isinstance<py::tuple>(item)) {
        throw py::type_error(absl::StrCat("input '", arg_name, "' of ", op,
                                          " is a list of tensors, got ",
                                          std::string(py::repr(item))));
      }
      in.is_list = true;
      for (py::handle x : item) in.values.push_back(ToInputValue(core, x, op, arg_name));
    } else {
      in.values.push_back(ToInputValue(core, item, op, arg_name));
    }
    args.push_back(std::move(in));
  }
  AttrMap attr_map;
  for (auto [key, value] : attrs) {
    std::string k = py::cast<std::string>(key);
    absl::StatusOr<AttrValue> a = AttrFromPython(def->FindAttr(k), value);
    if (!a.ok()) {
      ThrowStatus(absl::Status(a.status().code(), absl::StrCat(op, ": ", a.status().message())));
    }
    attr_map.emplace(k, *std::move(a));
  }
  const Node* node =
      ValueOrThrow(core->AddOp(op, args, std::move(attr_map), name.value_or(""), location));
  return MakeOperation(core, self, node);
}

void BindOperation(py::module_& m) {
  py::class_<PyOperation>(m, "Operation",
                          "A node of a Graph: an op with its inputs and attributes. Made by op "
                          "functions; read-only.")
      .def_property_readonly(
          "name", [](const PyOperation& o) { return o.node->name(); }, "The node's unique name.")
      .def_property_readonly(
          "type", [](const PyOperation& o) { return o.node->op(); }, "The op type, e.g. MatMul.")
      .def_property_readonly(
          "device", [](const PyOperation& o) { return o.node->requested_device(); },
          "The device requested for the node (empty: any).")
      .def_property_readonly(
          "graph", [](const PyOperation& o) { return o.graph; }, "The Graph holding the node.")
      .def_property_readonly(
          "source_location", [](const PyOperation& o) { return o.node->source_location(); },
          "file:line of the user code that built the node.")
      .def_property_readonly(
          "inputs",
          [](const PyOperation& o) {
            py::list out;
            for (const Endpoint& e : o.node->inputs()) out.append(MakeTensor(o.core, o.graph, e));
            return out;
          },
          "The tensors the node consumes, in order.")
      .def_property_readonly(
          "outputs",
          [](const PyOperation& o) {
            py::list out;
            for (int i = 0; i < o.node->num_outputs(); ++i) {
              out.append(MakeTensor(o.core, o.graph, Endpoint{o.node, i}));
            }
            return out;
          },
          "The tensors the node produces, in order.")
      .def_property_readonly(
          "control_inputs",
          [](const PyOperation& o) {
            py::list out;
            for (const Node* n : o.node->control_inputs()) {
              out.append(MakeOperation(o.core, o.graph, n));
            }
            return out;
          },
          "Operations that must run before this one.")
      .def(
          "get_attr",
          [](const PyOperation& o, const std::string& name) {
            auto it = o.node->attrs().find(name);
            if (it == o.node->attrs().end()) {
              throw py::value_error(
                  absl::StrCat(o.node->DebugName(), " has no attribute '", name, "'"));
            }
            return AttrToPython(it->second);
          },
          py::arg("name"), "The value of attribute `name` (ValueError if the node has none).")
      .def("__eq__", [](const PyOperation& a, const PyOperation& b) { return a.node == b.node; })
      .def("__hash__", [](const PyOperation& o) { return std::hash<const void*>()(o.node); })
      .def("__repr__", [](const PyOperation& o) {
        return absl::StrCat("<sluice.Operation '", o.node->name(), "' type=", o.node->op(), ">");
      });
}

void BindTensor(py::module_& m) {
  py::class_<PyTensor>(m, "Tensor",
                       "A symbolic handle on one output of an Operation; its value exists only "
                       "when a Session runs the graph. Supports +, -, *, /, @ and unary -.")
      .def_property_readonly(
          "name", [](const PyTensor& t) { return t.endpoint.DebugString(); },
          "\"node:index\", the name used in feeds and fetches.")
      .def_property_readonly(
          "op", [](const PyTensor& t) { return MakeOperation(t.core, t.graph, t.endpoint.node); },
          "The Operation that produces this tensor.")
      .def_property_readonly(
          "value_index", [](const PyTensor& t) { return t.endpoint.index; },
          "Which output of its Operation this tensor is.")
      .def_property_readonly(
          "dtype", [](const PyTensor& t) { return t.endpoint.node->output_type(t.endpoint.index); },
          "The element type (a sluice.DType).")
      .def_property_readonly(
          "shape",
          [](const PyTensor& t) {
            return ShapeToPython(t.endpoint.node->output_shape(t.endpoint.index));
          },
          "The static shape: a tuple with None for unknown sizes, or None if even the rank is "
          "unknown.")
      .def(
          "get_shape",
          [](const PyTensor& t) {
            return ShapeToPython(t.endpoint.node->output_shape(t.endpoint.index));
          },
          "Same as the `shape` property.")
      .def_property_readonly(
          "graph", [](const PyTensor& t) { return t.graph; }, "The Graph holding the tensor.")
      .def_property_readonly(
          "device", [](const PyTensor& t) { return t.endpoint.node->requested_device(); },
          "The device requested for the producing node.")
      .def(
          "consumers",
          [](const PyTensor& t) {
            py::list out;
            for (const OutEdge& e : t.endpoint.node->out_edges()) {
              if (!e.is_control() && e.src_output == t.endpoint.index) {
                out.append(MakeOperation(t.core, t.graph, e.dst));
              }
            }
            return out;
          },
          "The Operations that read this tensor.")
      .def("__eq__", [](const PyTensor& a, const PyTensor& b) { return a.endpoint == b.endpoint; })
      .def("__hash__",
           [](const PyTensor& t) {
             return std::hash<const void*>()(t.endpoint.node) * 31 + t.endpoint.index;
           })
      .def("__repr__", &TensorRepr);
}

}  // namespace

void BindGraph(py::module_& m) {
  BindOperation(m);
  BindTensor(m);
  py::class_<GraphCore, CorePtr>(m, "Graph",
                                 "A dataflow graph under construction (the C++ part of "
                                 "sluice.Graph).")
      .def(py::init<>())
      .def("_add_op", &AddOp, py::arg("op_type"), py::arg("inputs"), py::arg("attrs"),
           py::arg("name"), py::arg("location"),
           "Adds a node: one entry of `inputs` per input argument of the op (a list for list "
           "arguments); returns its Operation.")
      .def(
          "_add_const",
          [](const py::object& self, const py::handle& value,
             const std::optional<std::string>& name, const std::string& location) {
            CorePtr core = CoreOf(self);
            Tensor t = ValueOrThrow(LiteralFromPython(value));
            const Node* n = ValueOrThrow(core->AddConst(t, name.value_or(""), location));
            return MakeTensor(core, self, Endpoint{n, 0});
          },
          py::arg("value"), py::arg("name"), py::arg("location"),
          "Adds a Const node holding `value`; returns its tensor.")
      .def(
          "_write_handle",
          [](const py::object& self, const PyTensor& variable, const std::string& location) {
            CorePtr core = CoreOf(self);
            CheckSameGraph(core, variable);
            return MakeTensor(core, self,
                              ValueOrThrow(core->WriteHandle(variable.endpoint, location)));
          },
          py::arg("variable"), py::arg("location"),
          "A write handle for the variable `variable` reads (input 0 of Assign ops).")
      .def(
          "_push_name_scope",
          [](GraphCore& g, const std::optional<std::string>& name) {
            return g.PushNameScope(name.value_or(""));
          },
          "Enters a name scope; returns the full prefix ending in '/' ('' at the root).")
      .def(
          "_push_device",
          [](GraphCore& g, const std::optional<std::string>& device) {
            g.PushDevice(device.value_or(""));
          },
          "Requests `device` for the nodes built until the matching _pop_frame.")
      .def(
          "_current_device", [](const GraphCore& g) { return g.device(); },
          "The device string the innermost device block requests ('' for none or a function).")
      .def(
          "_push_device_function",
          [](GraphCore& g, py::function choose) {
            g.PushDeviceFunction([choose](const GraphCore::DeviceQuery& q) {
              py::gil_scoped_acquire gil;
              return py::cast<std::string>(choose(q.op_type, q.name, q.bytes));
            });
          },
          "Chooses each new node's device by calling `choose(op_type, name, bytes)` (a str "
          "result; bytes: a variable's, else -1) until the matching _pop_frame.")
      .def(
          "_push_control_dependencies",
          [](const py::object& self, const py::object& deps) {
            CorePtr core = CoreOf(self);
            if (deps.is_none()) {
              core->PushControlDependencies({}, /*clear=*/true);
            } else {
              core->PushControlDependencies(NodesOf(core, deps), /*clear=*/false);
            }
          },
          "Adds control dependencies to new nodes (None clears them).")
      .def(
          "_pop_frame", [](GraphCore& g) { ThrowIfError(g.PopFrame()); },
          "Leaves the innermost name scope, device or control-dependency block.")
      .def_property_readonly(
          "_name_scope", [](const GraphCore& g) { return g.name_prefix(); },
          "The current name-scope prefix ('' at the root).")
      .def(
          "unique_name",
          [](const GraphCore& g, const std::string& name) {
            const std::string& p = g.name_prefix();
            return g.UniqueName(p.empty() ? name : absl::StrCat(p, "/", name));
          },
          py::arg("name"), "The name a node called `name` would get in the current name scope.")
      .def(
          "get_operation_by_name",
          [](const py::object& self, const std::string& name) {
            CorePtr core = CoreOf(self);
            const Node* n = core->graph().FindNode(name);
            if (n == nullptr) throw py::key_error(absl::StrCat("no operation named '", name, "'"));
            return MakeOperation(core, self, n);
          },
          py::arg("name"), "The Operation called `name` (KeyError if there is none).")
      .def(
          "get_tensor_by_name",
          [](const py::object& self, const std::string& name) {
            CorePtr core = CoreOf(self);
            absl::StatusOr<Endpoint> e = core->graph().ParseEndpoint(name);
            if (!e.ok()) throw py::key_error(std::string(e.status().message()));
            return MakeTensor(core, self, *e);
          },
          py::arg("name"), "The Tensor called \"node:index\" (KeyError if there is none).")
      .def(
          "get_operations",
          [](const py::object& self) {
            CorePtr core = CoreOf(self);
            py::list out;
            for (const Node* n : core->graph().nodes()) out.append(MakeOperation(core, self, n));
            return out;
          },
          "Every Operation, inputs before their consumers.")
      .def(
          "_to_dot",
          [](const py::object& self, std::vector<std::string> devices, const std::string& title) {
            CorePtr core = CoreOf(self);
            std::shared_ptr<const Graph> graph = ValueOrThrow(core->Snapshot());
            if (devices.empty()) devices = RequestedDevices(*graph);
            PlacerOptions options;
            options.allow_soft_placement = true;
            Placement placement = ValueOrThrow(PlaceGraph(*graph, devices, options));
            DotOptions dot;
            dot.title = title;
            return PlacedGraphToDot(*graph, placement, dot);
          },
          py::arg("devices"), py::arg("title"),
          "Graphviz DOT of the graph placed on `devices` (empty: one CPU per task the nodes "
          "request).")
      .def(
          "finalize", [](GraphCore& g) { ValueOrThrow(g.Finalize()); },
          "Freezes the graph: no operation can be added afterwards. Sessions do this before "
          "their first run.")
      .def_property_readonly("finalized", &GraphCore::finalized, "True once the graph is frozen.")
      .def("__len__", [](const GraphCore& g) { return g.graph().num_nodes(); });
}

}  // namespace python
}  // namespace sluice
