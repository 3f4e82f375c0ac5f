// The distributed side of the module: a session run by a remote master (sluice.Session with a
// "grpc://host:port" target), one server task in this process (sluice.Server) and a cluster of
// real sluice_server processes on loopback (sluice.LocalCluster). Everything that waits on the
// network or on child processes runs with the GIL released.
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "distributed/auth.h"
#include "distributed/deploy_config.h"
#include "distributed/grpc_util.h"
#include "distributed/local_cluster.h"
#include "distributed/protocol.h"
#include "distributed/remote_session.h"
#include "distributed/server.h"
#include "distributed/tls.h"
#include "graph/cluster_spec.h"
#include "python/bindings.h"

namespace sluice {
namespace python {
namespace {

// Same Python interface as the in-process PySession (session_bindings.cc): the remote session
// is created (a snapshot of the graph sent to the master) on the first use.
class PyRemoteSession {
 public:
  PyRemoteSession(std::shared_ptr<GraphCore> core, std::string master_address,
                  double connect_timeout_s, double step_timeout_s, bool allow_soft_placement,
                  bool log_device_placement, const std::vector<std::string>& device_filters)
      : core_(std::move(core)), master_address_(std::move(master_address)) {
    options_.connect_timeout = absl::Seconds(connect_timeout_s);
    options_.step_timeout = absl::Seconds(step_timeout_s);
    options_.config.set_allow_soft_placement(allow_soft_placement);
    options_.config.set_log_device_placement(log_device_placement);
    for (const std::string& f : device_filters) options_.config.add_device_filters(f);
  }

  py::list Run(const py::list& feeds, const py::list& fetches, const py::list& targets) {
    std::shared_ptr<RemoteSession> session = GetSession();
    return RunNamed(*session, NamedRunFromPython(feeds, fetches, targets));
  }

  // A traced run: (values, trace dict: the master's StepStats and this client's times).
  py::tuple RunTraced(const py::list& feeds, const py::list& fetches, const py::list& targets) {
    std::shared_ptr<RemoteSession> session = GetSession();
    NamedRun run = NamedRunFromPython(feeds, fetches, targets);
    std::vector<Tensor> outputs;
    RunMetadata metadata;
    CallWithoutGil([&] {
      absl::Status status = session->Run(run.feeds, run.fetches, run.targets, &outputs, &metadata);
      run.feeds.clear();
      return status;
    });
    py::list values;
    for (Tensor& t : outputs) values.append(ArrayFromTensor(std::move(t)));
    const proto::StepStats& s = metadata.step_stats;
    py::list tasks;
    for (const proto::TaskStepStats& t : s.tasks()) {
      py::list nodes;
      for (const proto::NodeStats& n : t.nodes()) {
        nodes.append(NodeStatsDict(n.device(), n.node(), n.op(), n.start_ns(), n.end_ns(),
                                   n.thread(), n.transfer(), n.bytes()));
      }
      py::dict task;
      task["task"] = t.task();
      task["clock_offset_ns"] = t.clock_offset_ns();
      task["clock_error_ns"] = t.clock_error_ns();
      task["call_sent_ns"] = t.call_sent_ns();
      task["call_done_ns"] = t.call_done_ns();
      task["received_ns"] = t.received_ns();
      task["replied_ns"] = t.replied_ns();
      task["nodes"] = nodes;
      tasks.append(task);
    }
    py::dict stats;
    stats["client_sent_ns"] = metadata.client_sent_ns;
    stats["client_done_ns"] = metadata.client_done_ns;
    stats["master_received_ns"] = s.master_received_ns();
    stats["master_replied_ns"] = s.master_replied_ns();
    stats["tasks"] = tasks;
    return py::make_tuple(values, stats);
  }

  void Save(const std::string& path, const std::vector<std::string>& names) {
    std::shared_ptr<RemoteSession> session = GetSession();
    CallWithoutGil([&] { return session->Save(path, names); });
  }

  void Restore(const std::string& path, const std::vector<std::string>& names) {
    std::shared_ptr<RemoteSession> session = GetSession();
    CallWithoutGil([&] { return session->Restore(path, names); });
  }

  std::string Handle() { return GetSession()->handle(); }

  std::vector<std::string> ListDevices() {
    std::shared_ptr<RemoteSession> session = GetSession();
    absl::StatusOr<std::vector<std::string>> devices;
    {
      py::gil_scoped_release release;
      devices = session->ListDevices();
    }
    return ValueOrThrow(std::move(devices));
  }

  // Closing tells the master (a network call), so the GIL is released for it.
  void Close() {
    closed_ = true;
    std::shared_ptr<RemoteSession> session = std::move(session_);
    py::gil_scoped_release release;
    session.reset();
  }

  bool closed() const { return closed_; }

 private:
  // Created on first use, and again over a new snapshot when ops were added since; the
  // variables live on the workers (shared by name), so they carry over by themselves.
  std::shared_ptr<RemoteSession> GetSession() {
    if (closed_) throw std::runtime_error("Attempted to use a closed Session.");
    std::shared_ptr<const Graph> graph = ValueOrThrow(core_->Snapshot());
    if (session_ == nullptr || graph != graph_) {
      std::shared_ptr<RemoteSession> old = std::move(session_);
      absl::StatusOr<std::unique_ptr<RemoteSession>> created;
      {
        py::gil_scoped_release release;
        old.reset();  // Closes it on the master.
        created = RemoteSession::Create(master_address_, graph, options_);
      }
      session_ = ValueOrThrow(std::move(created));
      graph_ = std::move(graph);
    }
    return session_;
  }

  std::shared_ptr<GraphCore> core_;
  std::string master_address_;
  RemoteSessionOptions options_;
  std::shared_ptr<const Graph> graph_;  // The snapshot session_ runs.
  std::shared_ptr<RemoteSession> session_;
  bool closed_ = false;
};

// One server task in this process. The cluster spec gives this task's control port (its data
// port is chosen by the OS unless given, as for sluice_server) and the tasks it runs sessions'
// steps on.
std::unique_ptr<Server> StartServer(const std::string& cluster_spec, const std::string& job,
                                    int task, const std::string& host, int control_port,
                                    int data_port, int64_t wait_for_tasks_ms) {
  ServerOptions options;
  options.wait_for_tasks = absl::Milliseconds(wait_for_tasks_ms);
  options.job = job;
  options.task = task;
  options.host = host;
  int port = control_port;
  if (!cluster_spec.empty()) {
    ClusterSpec spec = ValueOrThrow(ClusterSpec::Parse(cluster_spec));
    if (port < 0) {
      const std::string address = ValueOrThrow(spec.TaskAddress(job, task));
      port = std::stoi(address.substr(address.rfind(':') + 1));
    }
    options.cluster_tasks = ClusterTasks(spec);
  }
  if (port < 0) {
    ThrowStatus(absl::InvalidArgumentError(
        absl::StrCat("server /job:", job, "/task:", task,
                     ": give a port or a cluster spec that names this task")));
  }
  options.control_port = port;
  options.data_port = std::max(data_port, 0);
  absl::StatusOr<std::unique_ptr<Server>> server;
  {
    py::gil_scoped_release release;
    server = Server::Start(options);
  }
  return ValueOrThrow(std::move(server));
}

std::unique_ptr<LocalCluster> StartLocalCluster(const std::string& server_binary, int num_workers,
                                                const std::vector<std::string>& worker_flags,
                                                const std::vector<std::string>& master_flags,
                                                int num_ps) {
  LocalClusterOptions options;
  options.server_binary = server_binary;
  options.num_workers = num_workers;
  options.num_ps = num_ps;
  options.worker_flags = worker_flags;
  options.master_flags = master_flags;
  absl::StatusOr<std::unique_ptr<LocalCluster>> cluster;
  {
    py::gil_scoped_release release;
    cluster = LocalCluster::Start(options);
  }
  return ValueOrThrow(std::move(cluster));
}

// Runs `method` of the cluster with the GIL released and raises on error.
template <typename Method>
void CallReleased(LocalCluster& cluster, Method method, int worker) {
  if (worker < 0 || worker >= cluster.num_workers()) {
    throw py::index_error(
        absl::StrCat("worker ", worker, " out of range [0, ", cluster.num_workers(), ")"));
  }
  CallWithoutGil([&] { return (cluster.*method)(worker); });
}

// A heartbeat request as a client sends it.
proto::HeartbeatRequest ClientHeartbeat() {
  proto::HeartbeatRequest req;
  req.set_protocol_version(kProtocolVersion);
  req.set_from("client");
  return req;
}

// The status of one unary call `call(&ctx)`, made with a 10 s deadline and the GIL released,
// as text (tests and tools compare it).
template <typename Call>
std::string StatusText(Call call) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  grpc::Status s;
  {
    py::gil_scoped_release release;
    s = call(&ctx);
  }
  return FromGrpc(s).ToString();
}

}  // namespace

void BindCluster(py::module_& m) {
  py::class_<PyRemoteSession>(m, "RemoteSession",
                              "The session behind sluice.Session('grpc://host:port').")
      .def(py::init<std::shared_ptr<GraphCore>, std::string, double, double, bool, bool,
                    const std::vector<std::string>&>(),
           py::arg("graph"), py::arg("master_address"), py::arg("connect_timeout_s") = 10.0,
           py::arg("step_timeout_s") = 60.0, py::arg("allow_soft_placement") = false,
           py::arg("log_device_placement") = false,
           py::arg("device_filters") = std::vector<std::string>())
      .def("run_traced", &PyRemoteSession::RunTraced, py::arg("feeds"), py::arg("fetches"),
           py::arg("targets"), "Runs one step traced: (values, trace dict).")
      .def("run", &PyRemoteSession::Run, py::arg("feeds"), py::arg("fetches"), py::arg("targets"),
           "Runs one step on the cluster; same arguments and result as Session.run.")
      .def("save", &PyRemoteSession::Save, py::arg("path"), py::arg("names"),
           "Writes the variables `names` (all if empty) to the local checkpoint file `path`.")
      .def("restore", &PyRemoteSession::Restore, py::arg("path"), py::arg("names"),
           "Sets the variables `names` (all if empty) from the local checkpoint file `path`.")
      .def("list_devices", &PyRemoteSession::ListDevices, "The devices of the cluster.")
      .def("close", &PyRemoteSession::Close, "Closes the session on the master.")
      .def_property_readonly("closed", &PyRemoteSession::closed)
      .def_property_readonly(
          "handle", [](PyRemoteSession& s) { return s.Handle(); },
          "The master's handle of the current session (tests).");

  py::class_<Server>(m, "Server", "One sluice server task running in this process.")
      .def(py::init(&StartServer), py::arg("cluster_spec"), py::arg("job"), py::arg("task"),
           py::arg("host") = "127.0.0.1", py::arg("control_port") = -1, py::arg("data_port") = 0,
           py::arg("wait_for_tasks_ms") = 60000)
      .def_property_readonly("control_address", &Server::control_address)
      .def_property_readonly("data_address", &Server::data_address)
      .def(
          "stop",
          [](Server& s) {
            py::gil_scoped_release release;
            s.Shutdown();
          },
          "Stops serving: cancels what runs and returns once both servers are down.")
      .def(
          "join",
          [](Server& s) {
            py::gil_scoped_release release;
            s.Wait();
          },
          "Blocks until the server is stopped.");

  m.def(
      "_config_from_environment",
      []() -> py::object {
        std::optional<TaskConfig> c = ValueOrThrow(ConfigFromEnvironment(std::getenv));
        if (!c.has_value()) return py::none();
        py::dict cluster;
        for (const auto& [job, tasks] : c->cluster) cluster[py::str(job)] = tasks;
        return py::make_tuple(cluster, c->job, c->task);
      },
      "(cluster dict, job, task) from SLUICE_CONFIG or Slurm's variables; None when neither "
      "is set.");
  m.def(
      "_set_tls",
      [](const std::string& cert, const std::string& key, const std::string& ca,
         bool require_client_cert) {
        ThrowIfError(SetTls({cert, key, ca, require_client_cert}));
      },
      py::arg("cert"), py::arg("key"), py::arg("ca"), py::arg("require_client_cert") = false,
      "This process's TLS files for channels (and servers) built from now on; all empty: "
      "plaintext.");
  m.def(
      "_set_cluster_token", [](const std::string& token) { ThrowIfError(SetClusterToken(token)); },
      py::arg("token"),
      "Sets this process's cluster token: every call it makes carries it, and servers in it "
      "require it ('' for none).");
  m.def(
      "_heartbeat_round_trips",
      [](const std::string& control_address, int count) {
        auto stub = proto::Control::NewStub(MakeChannel(control_address));
        std::vector<double> micros;
        py::gil_scoped_release release;
        const proto::HeartbeatRequest req = ClientHeartbeat();
        for (int i = 0; i < count; ++i) {
          proto::HeartbeatResponse resp;
          grpc::ClientContext ctx;
          ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
          const absl::Time start = absl::Now();
          grpc::Status s = stub->Heartbeat(&ctx, req, &resp);
          if (!s.ok()) break;
          micros.push_back(absl::ToDoubleMicroseconds(absl::Now() - start));
        }
        return micros;
      },
      py::arg("control_address"), py::arg("count"),
      "`count` heartbeats over one channel to a task's control port, one after another: each "
      "round trip in microseconds (the peer of the step-overhead benchmark).");
  m.def(
      "_close_session",
      [](const std::string& master_address, const std::string& handle) {
        proto::CloseSessionRequest req;
        req.set_protocol_version(kProtocolVersion);
        req.set_session_handle(handle);
        proto::CloseSessionResponse resp;
        return StatusText([&](grpc::ClientContext* ctx) {
          return proto::Master::NewStub(MakeChannel(master_address))->CloseSession(ctx, req, &resp);
        });
      },
      py::arg("master_address"), py::arg("handle"),
      "Closes a session by its handle over a new channel (this process's TLS and token): the "
      "status as text (tests).");
  m.def(
      "_heartbeat",
      [](const std::string& control_address) {
        const proto::HeartbeatRequest req = ClientHeartbeat();
        proto::HeartbeatResponse resp;
        return StatusText([&](grpc::ClientContext* ctx) {
          return proto::Control::NewStub(MakeChannel(control_address))->Heartbeat(ctx, req, &resp);
        });
      },
      py::arg("control_address"),
      "One heartbeat to a task's control port, signed with this process's token if it has one: "
      "the status as text (tests and tools).");
  m.def(
      "_inspect",
      [](const std::string& control_address, double timeout_s) {
        proto::InspectRequest req;
        req.set_protocol_version(kProtocolVersion);
        proto::InspectResponse resp;
        grpc::ClientContext ctx;
        ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(timeout_s)));
        grpc::Status s;
        {
          py::gil_scoped_release release;
          s = proto::Control::NewStub(MakeChannel(control_address))->Inspect(&ctx, req, &resp);
        }
        ThrowIfError(FromGrpc(s));
        py::dict out;
        out["task"] =
            absl::StrCat("/job:", resp.identity().job(), "/task:", resp.identity().task());
        py::list steps, edges;
        for (const proto::InspectedStep& st : resp.steps()) {
          py::dict d;
          d["step_id"] = st.step_id();
          d["running"] = st.running();
          d["waiting"] =
              std::vector<std::string>(st.waiting_keys().begin(), st.waiting_keys().end());
          d["buffered"] =
              std::vector<std::string>(st.buffered_keys().begin(), st.buffered_keys().end());
          steps.append(d);
        }
        for (const proto::InspectedEdge& e : resp.edges()) {
          py::dict d;
          d["edge"] = e.edge();
          d["window"] = e.window();
          d["in_flight"] = e.in_flight();
          d["waiting_senders"] = e.waiting_senders();
          py::dict per_step;
          for (const auto& [step, n] : e.step_in_flight()) per_step[py::int_(step)] = n;
          d["step_in_flight"] = per_step;
          d["broken"] = e.broken();
          edges.append(d);
        }
        out["steps"] = steps;
        out["edges"] = edges;
        py::dict cluster;
        for (const proto::PeerAddress& t : resp.cluster()) {
          cluster[py::str(t.task_prefix())] = t.control_address();
        }
        out["cluster"] = cluster;
        py::list ps_waits;
        for (const proto::InspectedPsWait& w : resp.ps_waits()) {
          py::dict d;
          d["variable"] = w.variable();
          d["worker"] = w.worker();
          d["behind"] = std::vector<int64_t>(w.behind().begin(), w.behind().end());
          ps_waits.append(d);
        }
        out["ps_waits"] = ps_waits;
        return out;
      },
      py::arg("control_address"), py::arg("timeout_s") = 5.0,
      "What a worker is doing now (the Inspect RPC): its steps' waiting and buffered keys, its "
      "edges' credits.");
  m.def(
      "_load_cluster_token",
      [](const std::string& path) { return ValueOrThrow(LoadClusterToken(path)); }, py::arg("path"),
      "The token in a file readable by its owner only.");
  py::class_<LocalCluster>(m, "LocalCluster", "sluice_server processes on loopback.")
      .def(py::init(&StartLocalCluster), py::arg("server_binary"), py::arg("num_workers"),
           py::arg("worker_flags") = std::vector<std::string>{},
           py::arg("master_flags") = std::vector<std::string>{}, py::arg("num_ps") = 0)
      .def_property_readonly("master_address", &LocalCluster::master_address)
      .def_property_readonly("num_workers", &LocalCluster::num_workers)
      .def_property_readonly("num_ps", &LocalCluster::num_ps)
      .def(
          "ps_pid",
          [](const LocalCluster& c, int i) {
            if (i < 0 || i >= c.num_ps()) throw py::index_error("no such ps task");
            return static_cast<int>(c.ps(i).pid);
          },
          py::arg("index"))
      .def_property_readonly("master_pid",
                             [](const LocalCluster& c) { return static_cast<int>(c.master().pid); })
      .def(
          "ps_addresses",
          [](const LocalCluster& c, int i) {
            if (i < 0 || i >= c.num_ps()) throw py::index_error("no such ps task");
            return py::make_tuple(c.ps(i).control_address, c.ps(i).data_address);
          },
          py::arg("index"), "(control address, data address) of ps task `index`.")
      .def(
          "worker_addresses",
          [](const LocalCluster& c, int i) {
            if (i < 0 || i >= c.num_workers()) throw py::index_error("no such worker");
            return py::make_tuple(c.worker(i).control_address, c.worker(i).data_address);
          },
          py::arg("index"), "(control address, data address) of worker `index`.")
      .def(
          "metrics_address",
          [](const LocalCluster& c, const std::string& job, int i) {
            const bool ps = job == "ps";
            if (job == "master") return c.master().metrics_address;
            if (i < 0 || i >= (ps ? c.num_ps() : c.num_workers())) {
              throw py::index_error("no such task");
            }
            return ps ? c.ps(i).metrics_address : c.worker(i).metrics_address;
          },
          py::arg("job"), py::arg("index"),
          "host:port of a task's metrics endpoint (\"\" unless it was started with "
          "--metrics_port).")
      .def(
          "worker_pid",
          [](const LocalCluster& c, int i) {
            if (i < 0 || i >= c.num_workers()) throw py::index_error("no such worker");
            return static_cast<int>(c.worker(i).pid);
          },
          py::arg("index"))
      .def(
          "kill_worker",
          [](LocalCluster& c, int i) { CallReleased(c, &LocalCluster::KillWorker, i); },
          py::arg("index"), "SIGKILL worker `index` (a crashed machine).")
      .def(
          "restart_worker",
          [](LocalCluster& c, int i) { CallReleased(c, &LocalCluster::RestartWorker, i); },
          py::arg("index"), "Starts worker `index` again on its ports, as a new incarnation.")
      .def(
          "kill_ps",
          [](LocalCluster& c, int i) {
            if (i < 0 || i >= c.num_ps()) throw py::index_error("no such ps task");
            CallWithoutGil([&] { return c.KillPs(i); });
          },
          py::arg("index"), "SIGKILL ps task `index`.")
      .def(
          "restart_ps",
          [](LocalCluster& c, int i) {
            if (i < 0 || i >= c.num_ps()) throw py::index_error("no such ps task");
            CallWithoutGil([&] { return c.RestartPs(i); });
          },
          py::arg("index"), "Starts ps task `index` again on its ports.");
}

}  // namespace python
}  // namespace sluice
