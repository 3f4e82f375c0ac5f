// The in-process session behind sluice.Session: flat lists of feeds, fetches and targets in,
// numpy values out. The engine runs with the GIL released.
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "python/bindings.h"
#include "runtime/kernel/resource_mgr.h"
#include "runtime/session/checkpoint.h"
#include "runtime/session/session.h"

namespace sluice {
namespace python {
namespace {

// The engine's session runs a snapshot of the graph taken at the first run, and a new one
// whenever ops were added since, so ops may be added at any time, as users of graph mode expect.
// Thread-safe through the GIL: the shared_ptr is only touched with the GIL held, and a run
// keeps its own reference while the GIL is released, so Close() during a run is safe.
class PySession {
 public:
  PySession(std::shared_ptr<GraphCore> core, int inter_op_threads, int intra_op_threads)
      : core_(std::move(core)) {
    options_.device.inter_op_threads = inter_op_threads;
    options_.device.intra_op_threads = intra_op_threads;
  }

  py::list Run(const py::list& feeds, const py::list& fetches, const py::list& targets) {
    std::shared_ptr<Session> session = GetSession();
    return RunNamed(*session, NamedRunFromPython(feeds, fetches, targets));
  }

  // A traced run: (values, trace dict with one task, "localhost", on this process's clock).
  py::tuple RunTraced(const py::list& feeds, const py::list& fetches, const py::list& targets) {
    std::shared_ptr<Session> session = GetSession();
    NamedRun run = NamedRunFromPython(feeds, fetches, targets);
    StepTrace trace;
    RunOptions options;
    options.trace = &trace;
    std::vector<Tensor> outputs;
    int64_t sent = 0, done = 0;
    CallWithoutGil([&] {
      sent = StepTrace::NowNanos();
      absl::Status status = session->Run(run.feeds, run.fetches, run.targets, &outputs, options);
      done = StepTrace::NowNanos();
      run.feeds.clear();
      return status;
    });
    py::list values;
    for (Tensor& t : outputs) values.append(ArrayFromTensor(std::move(t)));
    py::list nodes;
    for (const NodeExecStats& n : trace.Take()) {
      nodes.append(NodeStatsDict(n.device, n.node, n.op, n.start_ns, n.end_ns, n.thread, n.transfer,
                                 n.bytes));
    }
    py::dict task;
    task["task"] = "localhost";
    task["clock_offset_ns"] = 0;
    task["clock_error_ns"] = 0;
    task["call_sent_ns"] = sent;
    task["call_done_ns"] = done;
    task["received_ns"] = sent;
    task["replied_ns"] = done;
    task["nodes"] = nodes;
    py::dict stats;
    stats["client_sent_ns"] = sent;
    stats["client_done_ns"] = done;
    stats["master_received_ns"] = sent;
    stats["master_replied_ns"] = done;
    stats["tasks"] = py::make_tuple(task);
    return py::make_tuple(values, stats);
  }

  // Checkpoints (runtime/session/checkpoint.h) of the session's variables; `names` empty: all of
  // them.
  void Save(const std::string& path, const std::vector<std::string>& names) {
    std::shared_ptr<Session> session = GetSession();
    CallWithoutGil([&] { return SaveCheckpoint(*session, path, names); });
  }

  void Restore(const std::string& path, const std::vector<std::string>& names) {
    std::shared_ptr<Session> session = GetSession();
    CallWithoutGil([&] { return RestoreCheckpoint(*session, path, names); });
  }

  void Close() {
    closed_ = true;
    session_.reset();
  }

  bool closed() const { return closed_; }

 private:
  // The engine session over the graph as it is now: created on first use, and created again
  // over a new snapshot when ops were added since, with the variables' values carried over (by
  // name, sharing their buffers; copy-on-write keeps them apart from then on) and the other
  // resources shared. Updates made by a run still in flight on the old session after that are
  // not carried.
  std::shared_ptr<Session> GetSession() {
    if (closed_) throw std::runtime_error("Attempted to use a closed Session.");
    std::shared_ptr<const Graph> graph = ValueOrThrow(core_->Snapshot());
    if (session_ == nullptr || graph != graph_) {
      std::shared_ptr<Session> next = ValueOrThrow(Session::Create(graph, options_));
      if (session_ != nullptr)
        CarryVariables(*session_->device()->resources(), *next->device()->resources());
      session_ = std::move(next);
      graph_ = std::move(graph);
    }
    return session_;
  }

  static void CarryVariables(const ResourceMgr& from, ResourceMgr& to) {
    for (const std::string& name : from.VariableNames()) {
      std::shared_ptr<Variable> old_var = from.LookupVariable(name);
      if (old_var == nullptr) continue;
      Tensor value;
      bool initialized;
      int64_t initializations;
      {
        absl::ReaderMutexLock lock(&old_var->mu);
        value = old_var->value;
        initialized = old_var->initialized;
        initializations = old_var->initializations;
      }
      std::shared_ptr<Variable> new_var = to.LookupOrCreateVariable(name);
      absl::MutexLock lock(&new_var->mu);
      new_var->value = std::move(value);
      new_var->initialized = initialized;
      new_var->initializations = initializations;
    }
    from.ShareResourcesWith(to);  // A parameter server's clocks and backups, say.
  }

  std::shared_ptr<GraphCore> core_;
  SessionOptions options_;
  std::shared_ptr<const Graph> graph_;  // The snapshot session_ runs.
  std::shared_ptr<Session> session_;
  bool closed_ = false;
};

}  // namespace

NamedRun NamedRunFromPython(const py::list& feeds, const py::list& fetches,
                            const py::list& targets) {
  NamedRun run;
  for (py::handle item : feeds) {
    py::tuple pair = py::reinterpret_borrow<py::tuple>(item);
    const std::string name = pair[0].cast<const PyTensor&>().endpoint.DebugString();
    absl::StatusOr<Tensor> value = TensorFromArray(pair[1].cast<py::array>());
    if (!value.ok()) {
      ThrowStatus(absl::Status(value.status().code(),
                               absl::StrCat("feed for '", name, "': ", value.status().message())));
    }
    run.feeds.emplace_back(name, *std::move(value));
  }
  for (py::handle item : fetches) {
    run.fetches.push_back(item.cast<const PyTensor&>().endpoint.DebugString());
  }
  for (py::handle item : targets) {
    run.targets.push_back(item.cast<const PyOperation&>().node->name());
  }
  return run;
}

void BindSession(py::module_& m) {
  py::class_<PySession>(m, "Session", "The in-process engine session behind sluice.Session.")
      .def(py::init<std::shared_ptr<GraphCore>, int, int>(), py::arg("graph"),
           py::arg("inter_op_threads") = 0, py::arg("intra_op_threads") = 0)
      .def("run_traced", &PySession::RunTraced, py::arg("feeds"), py::arg("fetches"),
           py::arg("targets"), "Runs one step traced: (values, trace dict).")
      .def("run", &PySession::Run, py::arg("feeds"), py::arg("fetches"), py::arg("targets"),
           "Runs one step. feeds: [(Tensor, ndarray)], fetches: [Tensor], targets: [Operation]; "
           "returns one numpy value per fetch. Releases the GIL while the engine runs.")
      .def("save", &PySession::Save, py::arg("path"), py::arg("names"),
           "Writes the variables `names` (all if empty) to the checkpoint file `path`.")
      .def("restore", &PySession::Restore, py::arg("path"), py::arg("names"),
           "Sets the variables `names` (all if empty) from the checkpoint file `path`.")
      .def("close", &PySession::Close, "Releases the engine session; later runs fail.")
      .def_property_readonly("closed", &PySession::closed);
  // The checkpoint file itself, for sl.train.Saver's partitioned variables (each saved as one
  // tensor under its name, whatever its parts).
  m.def(
      "_read_checkpoint",
      [](const std::string& path) {
        std::vector<std::pair<std::string, Tensor>> entries;
        {
          py::gil_scoped_release release;
          entries = ValueOrThrow(ReadCheckpoint(path));
        }
        py::list out;
        for (auto& [name, tensor] : entries) {
          out.append(py::make_tuple(name, ArrayFromTensor(std::move(tensor))));
        }
        return out;
      },
      py::arg("path"), "[(name, ndarray)] of a checkpoint file, checked whole (file order).");
  m.def(
      "_write_checkpoint",
      [](const std::string& path, const py::list& entries) {
        std::vector<std::pair<std::string, Tensor>> tensors;
        for (py::handle item : entries) {
          py::tuple pair = py::reinterpret_borrow<py::tuple>(item);
          tensors.emplace_back(pair[0].cast<std::string>(),
                               ValueOrThrow(TensorFromArray(pair[1].cast<py::array>())));
        }
        py::gil_scoped_release release;
        ThrowIfError(WriteCheckpoint(path, std::move(tensors)));
      },
      py::arg("path"), py::arg("entries"),
      "Writes [(name, ndarray)] atomically as a checkpoint file.");
}

py::dict NodeStatsDict(const std::string& device, const std::string& node, const std::string& op,
                       int64_t start_ns, int64_t end_ns, uint32_t thread,
                       const std::string& transfer, int64_t bytes) {
  py::dict d;
  d["device"] = device;
  d["node"] = node;
  d["op"] = op;
  d["start_ns"] = start_ns;
  d["end_ns"] = end_ns;
  d["thread"] = thread;
  d["transfer"] = transfer;
  d["bytes"] = bytes;
  return d;
}

}  // namespace python
}  // namespace sluice
