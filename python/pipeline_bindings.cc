// Pipeline schedules, their verifier and pipelined graphs (distributed/pipeline_schedule.h,
// distributed/pipeline_builder.h) for sluice.pipeline: schedules cross as PyTorch's CSV text,
// reports as plain dicts, stages as (device, node ids).
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "distributed/pipeline_builder.h"
#include "distributed/pipeline_schedule.h"
#include "python/bindings.h"

namespace sluice {
namespace python {
namespace {

pipeline::Schedule ScheduleOf(const std::string& kind, int stages_or_workers, int micro_batches,
                              int stages_per_worker) {
  if (kind == "gpipe") return ValueOrThrow(pipeline::GPipe(stages_or_workers, micro_batches));
  if (kind == "1f1b") return ValueOrThrow(pipeline::OneFOneB(stages_or_workers, micro_batches));
  if (kind == "interleaved_1f1b") {
    return ValueOrThrow(
        pipeline::Interleaved1F1B(stages_or_workers, stages_per_worker, micro_batches));
  }
  ThrowStatus(absl::InvalidArgumentError(
      absl::StrCat("unknown schedule '", kind, "' (expected gpipe, 1f1b or interleaved_1f1b)")));
}

py::dict ReportToDict(const pipeline::Report& r) {
  py::dict d;
  d["makespan"] = r.makespan;
  py::list workers, stages, timeline;
  for (size_t w = 0; w < r.workers.size(); ++w) {
    py::dict wd;
    wd["busy"] = r.workers[w].busy;
    wd["bubble"] = r.workers[w].bubble;
    wd["peak_bytes"] = r.worker_peak_bytes[w];
    workers.append(wd);
    py::list slots;
    for (const pipeline::Report::Slot& s : r.timeline[w]) {
      slots.append(py::make_tuple(s.action.ToString(), s.start, s.end));
    }
    timeline.append(slots);
  }
  for (const pipeline::StageReport& s : r.stages) {
    py::dict sd;
    sd["peak_micro_batches"] = s.peak_micro_batches;
    sd["peak_bytes"] = s.peak_bytes;
    stages.append(sd);
  }
  d["workers"] = workers;
  d["stages"] = stages;
  d["timeline"] = timeline;
  d["text"] = r.ToString();
  return d;
}

pipeline::Costs CostsOf(const std::vector<double>& forward, const std::vector<double>& backward,
                        double transfer, const std::vector<int64_t>& activation_bytes, int credits,
                        int64_t memory_budget) {
  pipeline::Costs c;
  c.forward = forward;
  c.backward = backward;
  c.transfer = transfer;
  c.activation_bytes = activation_bytes;
  c.credits = credits;
  if (memory_budget >= 0) c.memory_budget = memory_budget;
  return c;
}

// Stages from (device, node ids) pairs.
std::vector<pipeline::StageSpec> StagesOf(
    const CorePtr& core, const std::vector<std::pair<std::string, std::vector<int>>>& stages) {
  std::vector<pipeline::StageSpec> out;
  const Graph& g = core->graph();
  for (const auto& [device, ids] : stages) {
    pipeline::StageSpec spec{device, {}};
    for (int id : ids) {
      if (id < 0 || id >= g.num_nodes())
        throw py::value_error("a stage names a node not in the graph");
      spec.nodes.push_back(g.node(id));
    }
    out.push_back(std::move(spec));
  }
  return out;
}

// The batch inputs when the caller names none: every Placeholder a stage's node reads.
std::vector<Output> DefaultBatchInputs(const std::vector<pipeline::StageSpec>& stages) {
  std::vector<Output> out;
  for (const pipeline::StageSpec& st : stages) {
    for (const Node* node : st.nodes) {
      for (const Endpoint& in : node->inputs()) {
        Output o(in.node, in.index);
        if (in.node->op() == "Placeholder" &&
            std::find_if(out.begin(), out.end(),
                         [&](const Output& x) { return x.endpoint() == in; }) == out.end()) {
          out.push_back(o);
        }
      }
    }
  }
  return out;
}

std::vector<Output> OutputsOf(const CorePtr& core, const py::object& values) {
  std::vector<Output> out;
  for (py::handle v : values) {
    Endpoint e = TensorOf(core, v);
    out.emplace_back(e.node, e.index);
  }
  return out;
}

py::list TimingOf(const CorePtr& core, const py::object& graph,
                  const std::vector<pipeline::TimedAction>& timing) {
  py::list out;
  for (const pipeline::TimedAction& t : timing) {
    out.append(py::make_tuple(t.action.ToString(), t.worker,
                              MakeTensor(core, graph, t.start.endpoint()),
                              MakeTensor(core, graph, t.end.endpoint())));
  }
  return out;
}

py::dict BuildTraining(const py::object& graph,
                       const std::vector<std::pair<std::string, std::vector<int>>>& stages,
                       const py::object& batch_inputs, const py::handle& loss,
                       const py::object& var_list, const std::string& csv,
                       const std::vector<double>& forward, const std::vector<double>& backward,
                       double transfer, const std::vector<int64_t>& activation_bytes, int credits,
                       int64_t memory_budget, const std::string& name) {
  CorePtr core = CoreOf(graph);
  pipeline::TrainingSpec spec;
  spec.stages = StagesOf(core, stages);
  spec.batch_inputs =
      batch_inputs.is_none() ? DefaultBatchInputs(spec.stages) : OutputsOf(core, batch_inputs);
  Endpoint l = TensorOf(core, loss);
  spec.loss = Output(l.node, l.index);
  spec.variables = OutputsOf(core, var_list);
  spec.schedule = ValueOrThrow(pipeline::ScheduleFromCsv(csv));
  spec.costs = CostsOf(forward, backward, transfer, activation_bytes, credits, memory_budget);
  Scope scope = ValueOrThrow(core->DslScope("", "a pipeline"));
  scope = scope.NewSubScope(core->ReserveNameScope(name));
  pipeline::Built built = ValueOrThrow(pipeline::BuildTraining(scope, spec));
  py::dict d;
  d["loss"] = MakeTensor(core, graph, built.loss.endpoint());
  py::list grads;
  for (const auto& [g, v] : built.grads_and_vars) {
    grads.append(g.valid() ? MakeTensor(core, graph, g.endpoint()) : py::none());
  }
  d["grads"] = grads;
  d["timing"] = TimingOf(core, graph, built.timing);
  d["activation_bytes"] = built.activation_bytes;
  d["report"] = ReportToDict(built.predicted);
  d["csv"] = spec.schedule.ToCsv();
  return d;
}

py::dict BuildInference(const py::object& graph,
                        const std::vector<std::pair<std::string, std::vector<int>>>& stages,
                        const py::object& batch_inputs, const py::object& outputs,
                        int micro_batches, const std::string& name) {
  CorePtr core = CoreOf(graph);
  std::vector<pipeline::StageSpec> specs = StagesOf(core, stages);
  std::vector<Output> batch =
      batch_inputs.is_none() ? DefaultBatchInputs(specs) : OutputsOf(core, batch_inputs);
  Scope scope = ValueOrThrow(core->DslScope("", "a pipeline"));
  scope = scope.NewSubScope(core->ReserveNameScope(name));
  pipeline::Built built = ValueOrThrow(
      pipeline::BuildInference(scope, specs, batch, OutputsOf(core, outputs), micro_batches));
  py::dict d;
  py::list outs;
  for (const Output& o : built.outputs) outs.append(MakeTensor(core, graph, o.endpoint()));
  d["outputs"] = outs;
  d["timing"] = TimingOf(core, graph, built.timing);
  d["activation_bytes"] = built.activation_bytes;
  return d;
}

}  // namespace

void BindPipeline(py::module_& m) {
  m.def("_pipeline_train", &BuildTraining, py::arg("graph"), py::arg("stages"),
        py::arg("batch_inputs"), py::arg("loss"), py::arg("var_list"), py::arg("csv"),
        py::arg("forward"), py::arg("backward"), py::arg("transfer"), py::arg("activation_bytes"),
        py::arg("credits"), py::arg("memory_budget"), py::arg("name"),
        "Adds a pipelined training step; its pieces as a dict.");
  m.def("_pipeline_infer", &BuildInference, py::arg("graph"), py::arg("stages"),
        py::arg("batch_inputs"), py::arg("outputs"), py::arg("micro_batches"), py::arg("name"),
        "Adds pipelined inference; its outputs and timing as a dict.");
  m.def(
      "_pipeline_schedule",
      [](const std::string& kind, int stages_or_workers, int micro_batches, int stages_per_worker) {
        return ScheduleOf(kind, stages_or_workers, micro_batches, stages_per_worker).ToCsv();
      },
      py::arg("kind"), py::arg("stages_or_workers"), py::arg("micro_batches"),
      py::arg("stages_per_worker") = 1,
      "A generated schedule as PyTorch's pipelining CSV (one row per worker).");
  m.def(
      "_pipeline_simulate",
      [](const std::string& csv, const std::vector<double>& forward,
         const std::vector<double>& backward, double transfer,
         const std::vector<int64_t>& activation_bytes, int credits, int64_t memory_budget) {
        pipeline::Schedule s = ValueOrThrow(pipeline::ScheduleFromCsv(csv));
        return ReportToDict(ValueOrThrow(pipeline::Simulate(
            s, CostsOf(forward, backward, transfer, activation_bytes, credits, memory_budget))));
      },
      py::arg("csv"), py::arg("forward"), py::arg("backward"), py::arg("transfer"),
      py::arg("activation_bytes"), py::arg("credits"), py::arg("memory_budget"),
      "Simulates a CSV schedule: the verifier's report as a dict.");
}

}  // namespace python
}  // namespace sluice
