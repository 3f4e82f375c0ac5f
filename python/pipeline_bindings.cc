// Pipeline schedules and their verifier (distributed/pipeline_schedule.h) for sluice.pipeline:
// schedules cross as PyTorch's CSV text, reports as plain dicts.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
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

}  // namespace

void BindPipeline(py::module_& m) {
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
        pipeline::Costs c;
        c.forward = forward;
        c.backward = backward;
        c.transfer = transfer;
        c.activation_bytes = activation_bytes;
        c.credits = credits;
        if (memory_budget >= 0) c.memory_budget = memory_budget;
        return ReportToDict(ValueOrThrow(pipeline::Simulate(s, c)));
      },
      py::arg("csv"), py::arg("forward"), py::arg("backward"), py::arg("transfer"),
      py::arg("activation_bytes"), py::arg("credits"), py::arg("memory_budget"),
      "Simulates a CSV schedule: the verifier's report as a dict.");
}

}  // namespace python
}  // namespace sluice
