#include "runtime/session/session.h"

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "graph/device_name.h"
#include "ops/register.h"
#include "runtime/exec/graph_runner.h"

namespace sluice {

absl::StatusOr<std::unique_ptr<Session>> Session::Create(std::shared_ptr<const Graph> graph,
                                                         const SessionOptions& options) {
  RegisterAllOps();
  if (graph == nullptr) return absl::InvalidArgumentError("Session::Create needs a graph");
  if (!graph->finalized()) {
    return absl::FailedPreconditionError(
        "Session::Create needs a finalized graph (call Scope::Finalize or Graph::Finalize)");
  }
  if (options.num_devices < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("SessionOptions::num_devices must be at least 1, got ", options.num_devices));
  }
  std::vector<std::unique_ptr<CpuDevice>> devices;
  if (options.num_devices == 1) {
    devices.push_back(std::make_unique<CpuDevice>(options.device));
    return std::unique_ptr<Session>(new Session(std::move(graph), std::move(devices), nullptr));
  }
  // Several virtual devices: same job and task as the configured device, ids 0..n-1.
  SLUICE_ASSIGN_OR_RETURN(DeviceName base, DeviceName::Parse(options.device.name));
  if (!base.job) base.job = "localhost";
  if (!base.task) base.task = 0;
  base.type = "cpu";
  std::vector<std::string> names;
  for (int i = 0; i < options.num_devices; ++i) {
    base.id = i;
    DeviceOptions d = options.device;
    d.name = base.ToString();
    names.push_back(d.name);
    devices.push_back(std::make_unique<CpuDevice>(d));
  }
  SLUICE_ASSIGN_OR_RETURN(Placement placement, PlaceGraph(*graph, names, options.placement));
  return std::unique_ptr<Session>(new Session(std::move(graph), std::move(devices),
                                              std::make_unique<Placement>(std::move(placement))));
}

Session::Session(std::shared_ptr<const Graph> graph,
                 std::vector<std::unique_ptr<CpuDevice>> devices,
                 std::unique_ptr<Placement> placement)
    : graph_(std::move(graph)), devices_(std::move(devices)), placement_(std::move(placement)) {}

Session::~Session() = default;

absl::Status Session::Run(const std::vector<std::pair<std::string, Tensor>>& feeds,
                          const std::vector<std::string>& fetches,
                          const std::vector<std::string>& targets, std::vector<Tensor>* outputs,
                          const RunOptions& options) {
  std::vector<Endpoint> feed_points, fetch_points;
  std::vector<Tensor> feed_values;
  std::vector<const Node*> target_nodes;
  for (const auto& [name, value] : feeds) {
    SLUICE_ASSIGN_OR_RETURN(Endpoint e, graph_->ParseEndpoint(name));
    feed_points.push_back(e);
    feed_values.push_back(value);
  }
  for (const std::string& name : fetches) {
    SLUICE_ASSIGN_OR_RETURN(Endpoint e, graph_->ParseEndpoint(name));
    fetch_points.push_back(e);
  }
  for (const std::string& name : targets) {
    const Node* n = graph_->FindNode(name);
    if (n == nullptr) {
      return absl::NotFoundError(absl::StrCat("target '", name, "' is not a node of the graph"));
    }
    target_nodes.push_back(n);
  }
  return RunEndpoints(feed_points, std::move(feed_values), fetch_points, target_nodes, outputs,
                      options);
}

absl::Status Session::Run(const std::vector<std::pair<Output, Tensor>>& feeds,
                          const std::vector<Output>& fetches, std::vector<Tensor>* outputs,
                          const std::vector<Output>& targets, const RunOptions& options) {
  auto check = [this](const Output& o, absl::string_view what) -> absl::Status {
    if (!o.valid() || graph_->FindNode(o.node()->name()) != o.node()) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " ", o.valid() ? o.name() : "<invalid output>", " is not in the session's graph"));
    }
    return absl::OkStatus();
  };
  std::vector<Endpoint> feed_points, fetch_points;
  std::vector<Tensor> feed_values;
  std::vector<const Node*> target_nodes;
  for (const auto& [out, value] : feeds) {
    SLUICE_RETURN_IF_ERROR(check(out, "feed"));
    feed_points.push_back(out.endpoint());
    feed_values.push_back(value);
  }
  for (const Output& out : fetches) {
    SLUICE_RETURN_IF_ERROR(check(out, "fetch"));
    fetch_points.push_back(out.endpoint());
  }
  for (const Output& out : targets) {
    SLUICE_RETURN_IF_ERROR(check(out, "target"));
    target_nodes.push_back(out.node());
  }
  return RunEndpoints(feed_points, std::move(feed_values), fetch_points, target_nodes, outputs,
                      options);
}

absl::Status Session::RunEndpoints(const std::vector<Endpoint>& feeds,
                                   std::vector<Tensor> feed_values,
                                   const std::vector<Endpoint>& fetches,
                                   const std::vector<const Node*>& targets,
                                   std::vector<Tensor>* outputs, const RunOptions& options) {
  for (size_t i = 0; i < feeds.size(); ++i) {
    const Tensor& v = feed_values[i];
    SLUICE_RETURN_IF_ERROR(CheckFeed(feeds, i, v.dtype(), v.shape()));
  }
  if (placement_ != nullptr) {
    SLUICE_ASSIGN_OR_RETURN(GraphRunner * runner, GetOrCreateRunner(feeds, fetches, targets));
    GraphRunner::RunArgs args;
    args.step_id = next_step_id_.fetch_add(1, std::memory_order_relaxed);
    args.feed_values = std::move(feed_values);
    args.cancellation = options.cancellation;
    args.trace = options.trace;
    std::vector<Tensor> fetched;
    SLUICE_RETURN_IF_ERROR(runner->Run(std::move(args), &fetched));
    if (outputs != nullptr) *outputs = std::move(fetched);
    return absl::OkStatus();
  }
  SLUICE_ASSIGN_OR_RETURN(Executor * exec, GetOrCreateExecutor(feeds, fetches, targets));
  StepArgs args;
  args.step_id = next_step_id_.fetch_add(1, std::memory_order_relaxed);
  args.feed_values = std::move(feed_values);
  args.cancellation = options.cancellation;
  args.trace = options.trace;
  std::vector<Tensor> fetched;
  SLUICE_RETURN_IF_ERROR(exec->Run(std::move(args), &fetched));
  if (outputs != nullptr) *outputs = std::move(fetched);
  return absl::OkStatus();
}

namespace {

// Node ids identify nodes within the one graph, so the key can be built from numbers.
std::string SignatureKey(const std::vector<Endpoint>& feeds, const std::vector<Endpoint>& fetches,
                         const std::vector<const Node*>& targets) {
  std::string key;
  for (const Endpoint& e : feeds) absl::StrAppend(&key, e.node->id(), ":", e.index, ",");
  key += "|";
  for (const Endpoint& e : fetches) absl::StrAppend(&key, e.node->id(), ":", e.index, ",");
  key += "|";
  for (const Node* n : targets) absl::StrAppend(&key, n->id(), ",");
  return key;
}

}  // namespace

absl::StatusOr<GraphRunner*> Session::GetOrCreateRunner(const std::vector<Endpoint>& feeds,
                                                        const std::vector<Endpoint>& fetches,
                                                        const std::vector<const Node*>& targets) {
  std::string key = SignatureKey(feeds, fetches, targets);
  absl::MutexLock lock(&mu_);
  auto it = runners_.find(key);
  if (it != runners_.end()) return it->second.get();
  std::vector<CpuDevice*> devices;
  for (const auto& d : devices_) devices.push_back(d.get());
  SLUICE_ASSIGN_OR_RETURN(
      std::unique_ptr<GraphRunner> runner,
      GraphRunner::Create(*graph_, *placement_, devices, feeds, fetches, targets));
  GraphRunner* raw = runner.get();
  runners_.emplace(std::move(key), std::move(runner));
  return raw;
}

absl::StatusOr<Executor*> Session::GetOrCreateExecutor(const std::vector<Endpoint>& feeds,
                                                       const std::vector<Endpoint>& fetches,
                                                       const std::vector<const Node*>& targets) {
  std::string key = SignatureKey(feeds, fetches, targets);
  absl::MutexLock lock(&mu_);
  auto it = executors_.find(key);
  if (it != executors_.end()) return it->second.get();
  ExecutorParams params;
  params.graph = graph_.get();
  params.device = devices_[0].get();
  params.feeds = feeds;
  params.fetches = fetches;
  params.targets = targets;
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<Executor> exec, Executor::Create(params));
  Executor* raw = exec.get();
  executors_.emplace(std::move(key), std::move(exec));
  return raw;
}

}  // namespace sluice
