// Variables, gradients and optimizers: the C++ builders that take a Scope (ops/variables.h,
// ops/gradients.h, ops/optimizers.h), called with the graph's current name scope, device and
// control dependencies.
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "ops/collectives.h"
#include "ops/gradients.h"
#include "ops/optimizers.h"
#include "ops/variables.h"
#include "python/bindings.h"

namespace sluice {
namespace python {
namespace {

constexpr char kInitializerSuffix[] = "/Initializer";  // ops/variables.h naming.

// "file.py:12" as a SourceLocation; `file` keeps the string alive for the call.
SourceLocation ToLocation(const std::string& location, std::string* file) {
  int line = 0;
  size_t colon = location.rfind(':');
  if (colon != std::string::npos && absl::SimpleAtoi(location.substr(colon + 1), &line)) {
    *file = location.substr(0, colon);
  } else {
    *file = location;
  }
  return SourceLocation{file->c_str(), line};
}

// Raises the error a C++ builder recorded in the graph's scope, if it did.
void ThrowIfDslFailed(const GraphCore& core) { ThrowIfError(core.DslStatus()); }

Output OutputOf(const CorePtr& core, py::handle value) {
  Endpoint e = TensorOf(core, value);
  return Output(e.node, e.index);
}

std::vector<Output> OutputsOf(const CorePtr& core, const py::iterable& values) {
  std::vector<Output> out;
  for (py::handle v : values) out.push_back(OutputOf(core, v));
  return out;
}

py::list TensorsOrNone(const CorePtr& core, const py::object& graph,
                       const std::vector<Output>& outputs) {
  py::list out;
  for (const Output& o : outputs) {
    if (o.valid()) {
      out.append(MakeTensor(core, graph, o.endpoint()));
    } else {
      out.append(py::none());
    }
  }
  return out;
}

py::object AddVariable(const py::object& graph, const py::handle& initial_value,
                       const std::string& name, bool trainable, const std::string& location) {
  CorePtr core = CoreOf(graph);
  InputValue init = ToInputValue(core, initial_value, "Variable", "initial_value");
  if (!init.is_literal && !init.output.node->output_shape(init.output.index).IsFullyDefined()) {
    throw py::value_error(absl::StrCat(
        "a variable's initial value needs a fully defined shape; ", init.output.DebugString(),
        " has shape ", init.output.node->output_shape(init.output.index).DebugString()));
  }
  // The bytes of the value, for device functions that balance them over ps tasks.
  const Tensor literal = init.is_literal && init.literal_is_default_typed
                             ? DefaultTypedLiteral(init.literal)
                             : init.literal;
  const int64_t bytes =
      init.is_literal
          ? static_cast<int64_t>(literal.TotalBytes())
          : init.output.node->output_shape(init.output.index).num_elements() *
                static_cast<int64_t>(DTypeSize(init.output.node->output_type(init.output.index)));
  Scope scope = ValueOrThrow(core->DslScope(name, "a variable", "Variable", bytes));
  std::string file;
  SourceLocation loc = ToLocation(location, &file);
  Output var =
      init.is_literal
          ? ops::VariableWithInit(scope, Input(literal), loc)
          : ops::VariableWithInit(scope, Input(Output(init.output.node, init.output.index)), loc);
  ThrowIfDslFailed(*core);
  if (trainable) core->MarkTrainable(var.node());
  return MakeTensor(core, graph, var.endpoint());
}

// Variables in node order: every Variable node that has an initializer (ops/variables.h).
py::list GlobalVariables(const py::object& graph) {
  CorePtr core = CoreOf(graph);
  py::list out;
  for (const Node* init : ops::AllInitializers(core->root_scope())) {
    const std::string& n = init->name();
    const Node* var = core->graph().FindNode(n.substr(0, n.size() - strlen(kInitializerSuffix)));
    if (var != nullptr && var->op() == "Variable") {
      out.append(MakeTensor(core, graph, Endpoint{var, 0}));
    }
  }
  return out;
}

py::list Gradients(const py::object& graph, const py::iterable& ys, const py::iterable& xs,
                   const py::object& grad_ys, const std::string& name) {
  CorePtr core = CoreOf(graph);
  std::vector<Output> y = OutputsOf(core, ys), x = OutputsOf(core, xs), dy;
  if (!grad_ys.is_none()) dy = OutputsOf(core, grad_ys);
  Scope scope = ValueOrThrow(core->DslScope("", "gradients"));
  scope = scope.NewSubScope(core->ReserveNameScope(name));
  std::vector<Output> grads;
  ThrowIfError(AddGradients(scope, y, x, dy, &grads));
  return TensorsOrNone(core, graph, grads);
}

// Optimizer methods: the Python wrapper (sluice/train.py) keeps one C++ optimizer per graph.
py::object Minimize(ops::Optimizer& opt, const py::object& graph, const py::handle& loss,
                    const py::iterable& var_list, const std::string& name) {
  CorePtr core = CoreOf(graph);
  Output l = OutputOf(core, loss);
  std::vector<Output> vars = OutputsOf(core, var_list);
  Scope scope = ValueOrThrow(core->DslScope(name, "an optimizer step"));
  const Node* train = ValueOrThrow(opt.Minimize(scope, l, vars));
  return MakeOperation(core, graph, train);
}

py::list ComputeGradients(ops::Optimizer& opt, const py::object& graph, const py::handle& loss,
                          const py::iterable& var_list) {
  CorePtr core = CoreOf(graph);
  Output l = OutputOf(core, loss);
  std::vector<Output> vars = OutputsOf(core, var_list);
  Scope scope = ValueOrThrow(core->DslScope("", "gradients"));
  return TensorsOrNone(core, graph, ValueOrThrow(opt.ComputeGradients(scope, l, vars)));
}

py::object ApplyGradients(ops::Optimizer& opt, const py::object& graph,
                          const py::iterable& grads_and_vars, const std::string& name) {
  CorePtr core = CoreOf(graph);
  std::vector<std::pair<Output, Output>> pairs;
  for (py::handle item : grads_and_vars) {
    py::tuple pair = py::reinterpret_borrow<py::tuple>(item);
    Output grad = pair[0].is_none() ? Output() : OutputOf(core, pair[0]);
    pairs.emplace_back(grad, OutputOf(core, pair[1]));
  }
  Scope scope = ValueOrThrow(core->DslScope(name, "an optimizer step"));
  const Node* train = ValueOrThrow(opt.ApplyGradients(scope, pairs));
  return MakeOperation(core, graph, train);
}

}  // namespace

// Collectives (ops/collectives.h) over the devices `devices`, one per tensor.
py::list Collective(const py::object& graph, const std::string& kind, const py::iterable& tensors,
                    const std::vector<std::string>& devices, const std::string& reduction, int root,
                    const std::string& algorithm) {
  CorePtr core = CoreOf(graph);
  std::vector<Output> inputs = OutputsOf(core, tensors);
  Scope scope = ValueOrThrow(core->DslScope("", "a collective"));
  std::vector<Output> out;
  if (kind == "all_reduce" || kind == "reduce_scatter") {
    const ops::ReduceOp op = ValueOrThrow(ops::ParseReduceOp(reduction));
    const ops::AllReduceAlgorithm how = ValueOrThrow(ops::ParseAllReduceAlgorithm(algorithm));
    out = ValueOrThrow(kind == "all_reduce" ? ops::AllReduce(scope, inputs, devices, op, how)
                                            : ops::ReduceScatter(scope, inputs, devices, op));
  } else if (kind == "all_gather") {
    out = ValueOrThrow(ops::AllGather(scope, inputs, devices));
  } else if (kind == "broadcast") {
    if (inputs.size() != 1) throw py::value_error("broadcast takes one tensor");
    out = ValueOrThrow(ops::Broadcast(scope, inputs[0], root, devices));
  } else {
    throw py::value_error("unknown collective " + kind);
  }
  return TensorsOrNone(core, graph, out);
}

// ops::AllReduceInBuckets: tensors[d] is member d's list; returns (lists, bucket index lists).
py::tuple AllReduceInBuckets(const py::object& graph, const std::vector<py::list>& tensors,
                             const std::vector<std::string>& devices, const std::string& reduction,
                             int64_t bucket_bytes, const std::string& algorithm) {
  CorePtr core = CoreOf(graph);
  std::vector<std::vector<Output>> inputs;
  for (const py::list& member : tensors) inputs.push_back(OutputsOf(core, member));
  Scope scope = ValueOrThrow(core->DslScope("", "a bucketed all-reduce"));
  const ops::ReduceOp op = ValueOrThrow(ops::ParseReduceOp(reduction));
  const ops::AllReduceAlgorithm how = ValueOrThrow(ops::ParseAllReduceAlgorithm(algorithm));
  std::vector<std::vector<Output>> out =
      ValueOrThrow(ops::AllReduceInBuckets(scope, inputs, devices, op, bucket_bytes, how));
  py::list lists;
  for (const std::vector<Output>& member : out) lists.append(TensorsOrNone(core, graph, member));
  py::list buckets;
  if (!inputs.empty()) {
    for (const std::vector<int>& b : ops::PlanBuckets(inputs[0], bucket_bytes)) {
      buckets.append(py::cast(b));
    }
  }
  return py::make_tuple(lists, buckets);
}

void BindTraining(py::module_& m) {
  m.def("_collective", &Collective, py::arg("graph"), py::arg("kind"), py::arg("tensors"),
        py::arg("devices"), py::arg("reduction") = "sum", py::arg("root") = 0,
        py::arg("algorithm") = "auto",
        "Builds a collective over `devices` (ops/collectives.h); returns one tensor per member.");
  m.def("_all_reduce_in_buckets", &AllReduceInBuckets, py::arg("graph"), py::arg("tensors"),
        py::arg("devices"), py::arg("reduction"), py::arg("bucket_bytes"), py::arg("algorithm"),
        "ops::AllReduceInBuckets; returns (per-member result lists, the buckets' indices).");
  m.def(
      "_choose_all_reduce_algorithm",
      [](int64_t bytes, int members) {
        return ops::ChooseAllReduceAlgorithm(bytes, members) == ops::AllReduceAlgorithm::kRing
                   ? "ring"
                   : "recursive_doubling";
      },
      "The algorithm ops::AllReduce's cost model picks for `bytes` over `members`.");
  m.def("_add_variable", &AddVariable, py::arg("graph"), py::arg("initial_value"), py::arg("name"),
        py::arg("trainable"), py::arg("location"),
        "Adds a variable with its initializer (ops::VariableWithInit); returns its tensor.");
  m.def(
      "_initializer_of",
      [](const PyTensor& var) -> py::object {
        const Node* init = ops::InitializerOf(var.core->root_scope(),
                                              Output(var.endpoint.node, var.endpoint.index));
        if (init == nullptr) return py::none();
        return MakeOperation(var.core, var.graph, init);
      },
      "The initializer Operation of a variable, or None.");
  m.def(
      "_is_trainable", [](const PyTensor& var) { return var.core->IsTrainable(var.endpoint.node); },
      "Whether a variable was created trainable.");
  m.def("_global_variables", &GlobalVariables, "Tensors of every initialised variable.");
  m.def(
      "_global_variables_initializer",
      [](const py::object& graph, const std::string& name, const std::string& location) {
        CorePtr core = CoreOf(graph);
        Scope scope = ValueOrThrow(core->DslScope(name, "the variables initializer"));
        std::string file;
        const Node* init = ops::GlobalVariablesInitializer(scope, ToLocation(location, &file));
        ThrowIfDslFailed(*core);
        return MakeOperation(core, graph, init);
      },
      "A NoOp running every variable initializer of the graph so far.");
  m.def("_gradients", &Gradients, py::arg("graph"), py::arg("ys"), py::arg("xs"),
        py::arg("grad_ys"), py::arg("name"),
        "d(sum ys)/d(xs) (ops::AddGradients); None where ys do not depend on an x.");

  py::class_<ops::Optimizer>(m, "_Optimizer", "An ops::Optimizer (see ops/optimizers.h).")
      .def("_minimize", &Minimize)
      .def("_compute_gradients", &ComputeGradients)
      .def("_apply_gradients", &ApplyGradients)
      .def(
          "_created_variables",
          [](const ops::Optimizer& opt, const py::object& graph) {
            CorePtr core = CoreOf(graph);
            return TensorsOrNone(core, graph, opt.created_variables());
          },
          "Slot and other variables the optimizer created.")
      .def_property_readonly("name", &ops::Optimizer::name);
  py::class_<ops::GradientDescentOptimizer, ops::Optimizer>(m, "_GradientDescentOptimizer")
      .def(py::init<double, std::string>());
  py::class_<ops::MomentumOptimizer, ops::Optimizer>(m, "_MomentumOptimizer")
      .def(py::init<double, double, bool, std::string>());
  py::class_<ops::AdagradOptimizer, ops::Optimizer>(m, "_AdagradOptimizer")
      .def(py::init<double, double, std::string>());
  py::class_<ops::AdamOptimizer, ops::Optimizer>(m, "_AdamOptimizer")
      .def(py::init<double, double, double, double, std::string>());
}

}  // namespace python
}  // namespace sluice
