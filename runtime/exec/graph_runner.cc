#include "runtime/exec/graph_runner.h"

#include <atomic>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "core/status.h"

namespace sluice {
namespace {

// Nodes estimated below this many FLOPs count as cheap: when such nodes are all that a received
// tensor unblocks, the sending thread runs them instead of waking the receiving device.
constexpr double kCheapFlops = 32768;
// How many cheap deliveries may nest on one thread's stack before the next one is handed off.
constexpr int kMaxInlineDeliveries = 32;

bool IsCheap(const Node& node) { return EstimateNodeCost(node).flops < kCheapFlops; }

// Whether a partition has expensive work it can do before any of its receives completes.
bool HasHeavyStart(const Graph& graph) {
  std::vector<bool> ready(graph.num_nodes(), false);  // Can run before any receive completes.
  for (const Node* n : graph.TopologicalOrder()) {
    bool r = n->op() != kRecvOp;
    for (const Endpoint& in : n->inputs()) r = r && ready[in.node->id()];
    for (const Node* c : n->control_inputs()) r = r && ready[c->id()];
    ready[n->id()] = r;
    if (r && !IsCheap(*n)) return true;
  }
  return false;
}

}  // namespace

// One step across all partitions.
//
// Invariants:
//   - pending_units counts partitions whose executor has not called back; the step's `done`
//     runs once, when it reaches zero;
//   - the Step is deleted when `refs` reaches zero: one reference is released after `done`,
//     one by the thread that launched the step, and Abort holds one while it runs (aborting can
//     complete partitions, and so the step, on the aborting thread);
//   - Abort aborts the rendezvous before it cancels the step: receivers are completed by the
//     rendezvous, never from inside a cancellation callback, whose owners could then finish and
//     be freed while the cancellation manager still holds their callbacks.
struct GraphRunner::Step {
  DoneCallback done;
  std::unique_ptr<LocalRendezvous> own_rendezvous;
  Rendezvous* rendezvous = nullptr;
  StepTrace* trace = nullptr;        // RunArgs::trace.
  CancellationManager cancellation;  // Shared by the partitions' executors and kernels.
  CancellationManager* outer = nullptr;
  std::optional<CancellationManager::Token> outer_token;
  std::atomic<int> pending_units{0};
  std::atomic<int> refs{2};
  absl::Mutex mu;
  absl::Status status ABSL_GUARDED_BY(mu);
  std::vector<Tensor> fetched ABSL_GUARDED_BY(mu);

  void Ref() { refs.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  void Abort(const absl::Status& s) {
    Ref();
    {
      absl::MutexLock lock(&mu);
      if (status.ok()) status = s;
    }
    rendezvous->StartAbort(s);
    cancellation.StartCancel(s);
    Unref();
  }
  void Finish() {
    if (outer_token) outer->DeregisterCallback(*outer_token);
    absl::Status s;
    std::vector<Tensor> out;
    {
      absl::MutexLock lock(&mu);
      s = status;
      if (s.ok()) out = std::move(fetched);
    }
    DoneCallback cb = std::move(done);
    Unref();
    cb(std::move(s), std::move(out));
  }
};

absl::StatusOr<std::unique_ptr<GraphRunner>> GraphRunner::Create(
    const Graph& graph, const Placement& placement, const std::vector<CpuDevice*>& devices,
    const std::vector<Endpoint>& feeds, const std::vector<Endpoint>& fetches,
    const std::vector<const Node*>& targets) {
  if (devices.size() != placement.devices.size()) {
    return absl::InvalidArgumentError(absl::StrCat("the placement names ", placement.devices.size(),
                                                   " devices but ", devices.size(), " were given"));
  }
  PartitionOptions options;
  options.nodes = PruneForFetches(graph, fetches, targets, feeds);
  options.feeds = feeds;
  SLUICE_ASSIGN_OR_RETURN(PartitionedGraph parts, PartitionGraph(graph, placement, options));
  std::unique_ptr<GraphRunner> runner(new GraphRunner);
  for (const GraphPartition& p : parts.partitions) {
    CpuDevice* device = devices[p.device_index];
    if (device == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("no device for partition ", p.device));
    }
    runner->units_.push_back(Unit{p.graph, device, {}, {}});
  }
  std::vector<bool> needed(graph.num_nodes(), false);
  for (const Node* n : options.nodes) needed[n->id()] = true;
  for (const Endpoint& f : feeds) {
    Slot slot;
    if (needed[f.node->id()]) {
      SLUICE_ASSIGN_OR_RETURN(auto where, parts.Locate(f));
      std::vector<Endpoint>& unit_feeds = runner->units_[where.first].feeds;
      slot = Slot{where.first, static_cast<int>(unit_feeds.size())};
      unit_feeds.push_back(where.second);
    }
    runner->feed_slots_.push_back(slot);
  }
  for (const Endpoint& f : fetches) {
    SLUICE_ASSIGN_OR_RETURN(auto where, parts.Locate(f));
    std::vector<Endpoint>& unit_fetches = runner->units_[where.first].fetches;
    runner->fetch_slots_.push_back(Slot{where.first, static_cast<int>(unit_fetches.size())});
    unit_fetches.push_back(where.second);
  }
  runner->partitioned_ = std::make_unique<PartitionedGraph>(std::move(parts));
  SLUICE_RETURN_IF_ERROR(runner->Prepare());
  return runner;
}

absl::Status GraphRunner::Prepare() {
  const int n = static_cast<int>(units_.size());
  auto check = [&](const Slot& s, bool fetch) -> absl::Status {
    if (!fetch && s.unit < 0) return absl::OkStatus();
    if (s.unit < 0 || s.unit >= n || s.index < 0 ||
        s.index >=
            static_cast<int>(fetch ? units_[s.unit].fetches.size() : units_[s.unit].feeds.size())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bad ", fetch ? "fetch" : "feed", " slot (unit ", s.unit, ", index ", s.index, ")"));
    }
    return absl::OkStatus();
  };
  for (const Slot& s : feed_slots_) SLUICE_RETURN_IF_ERROR(check(s, false));
  unit_fetch_positions_.assign(n, {});
  for (int u = 0; u < n; ++u) unit_fetch_positions_[u].assign(units_[u].fetches.size(), -1);
  for (size_t i = 0; i < fetch_slots_.size(); ++i) {
    SLUICE_RETURN_IF_ERROR(check(fetch_slots_[i], true));
    unit_fetch_positions_[fetch_slots_[i].unit][fetch_slots_[i].index] = static_cast<int>(i);
  }
  for (const Unit& unit : units_) {
    if (unit.graph == nullptr || unit.device == nullptr) {
      return absl::InvalidArgumentError("every partition needs a graph and a device");
    }
    ExecutorParams params;
    params.graph = unit.graph.get();
    params.device = unit.device;
    params.feeds = unit.feeds;
    params.fetches = unit.fetches;
    params.nodes = unit.graph->nodes();
    absl::StatusOr<std::unique_ptr<Executor>> exec = Executor::Create(params);
    if (!exec.ok()) return AnnotateStatus(exec.status(), unit.device->name());
    executors_.push_back(*std::move(exec));
    heavy_start_.push_back(HasHeavyStart(*unit.graph));
    for (const Node* node : unit.graph->nodes()) {
      if (node->op() != kRecvOp) continue;
      Delivery d{unit.device, true};
      for (const OutEdge& e : node->out_edges()) d.inline_ok &= IsCheap(*e.dst);
      std::string edge = absl::StrCat(node->GetAttr<std::string>("send_device").value_or(""), ";",
                                      node->GetAttr<std::string>("recv_device").value_or(""), ";",
                                      node->GetAttr<std::string>("tensor_name").value_or(""));
      deliveries_.emplace(std::move(edge), d);
    }
  }
  return absl::OkStatus();
}

void GraphRunner::Deliver(const std::string& key, std::function<void()> deliver) const {
  // The key is "step;src_device;dst_device;edge;micro_batch": look up the middle three.
  size_t first = key.find(';'), last = key.rfind(';');
  auto it = first == std::string::npos || last <= first
                ? deliveries_.end()
                : deliveries_.find(absl::string_view(key).substr(first + 1, last - first - 1));
  if (it != deliveries_.end() && !it->second.inline_ok) {
    it->second.device->arena().enqueue([deliver = std::move(deliver)] { deliver(); });
    return;
  }
  // Cheap consumers run on the sending thread, but chains of such hops must not nest without
  // bound on one stack.
  static thread_local int depth = 0;
  if (depth >= kMaxInlineDeliveries && it != deliveries_.end()) {
    it->second.device->arena().enqueue([deliver = std::move(deliver)] { deliver(); });
    return;
  }
  ++depth;
  deliver();
  --depth;
}

void GraphRunner::RunAsync(RunArgs args, DoneCallback done) {
  Launch(std::move(args), std::move(done), /*caller_runs_first=*/false);
}

void GraphRunner::Launch(RunArgs args, DoneCallback done, bool caller_runs_first) {
  const int n = static_cast<int>(units_.size());
  if (args.feed_values.size() != feed_slots_.size()) {
    done(absl::InvalidArgumentError(absl::StrCat("expected ", feed_slots_.size(),
                                                 " feed values, got ", args.feed_values.size())),
         {});
    return;
  }
  auto* step = new Step;
  step->done = std::move(done);
  if (args.rendezvous != nullptr) {
    step->rendezvous = args.rendezvous;
  } else {
    step->own_rendezvous = std::make_unique<LocalRendezvous>(
        [this](const std::string& key, std::function<void()> deliver) {
          Deliver(key, std::move(deliver));
        });
    step->rendezvous = step->own_rendezvous.get();
  }
  {
    absl::MutexLock lock(&step->mu);  // Not shared yet; the lock costs nothing and says so.
    step->fetched.resize(fetch_slots_.size());
  }
  step->pending_units.store(n, std::memory_order_relaxed);
  if (n == 0) {
    step->Unref();  // The launcher's reference.
    step->Finish();
    return;
  }
  step->trace = args.trace;
  if (args.cancellation != nullptr) {
    step->outer = args.cancellation;
    step->outer_token = args.cancellation->RegisterCallback(
        [step, cm = args.cancellation] { step->Abort(cm->reason()); });
    if (!step->outer_token) step->Abort(args.cancellation->reason());
  }
  std::vector<std::vector<Tensor>> unit_feeds(n);
  for (int u = 0; u < n; ++u) unit_feeds[u].resize(units_[u].feeds.size());
  for (size_t i = 0; i < feed_slots_.size(); ++i) {
    const Slot& s = feed_slots_[i];
    if (s.unit >= 0) unit_feeds[s.unit][s.index] = std::move(args.feed_values[i]);
  }
  auto start = [this, step, step_id = args.step_id](int u, std::vector<Tensor> feeds) {
    executors_[u]->RunAsync(UnitArgs(step, step_id, std::move(feeds)),
                            [this, step, u](absl::Status s, std::vector<Tensor> out) {
                              UnitDone(step, u, std::move(s), std::move(out));
                            });
  };
  // Partitions that have expensive work before their first receive start on their own devices,
  // in parallel; the others only register their receives, so they start here, receivers first,
  // and their work then runs where their inputs arrive (see Deliver).
  for (int u = n - 1; u >= 1; --u) {
    if (heavy_start_[u]) {
      units_[u].device->arena().enqueue(
          [start, u, feeds = std::move(unit_feeds[u])] { start(u, feeds); });  // Tensors: cheap.
    }
  }
  for (int u = n - 1; u >= 1; --u) {
    if (!heavy_start_[u]) start(u, std::move(unit_feeds[u]));
  }
  if (caller_runs_first) {
    // The blocking caller runs the first partition itself, helping on its device's arena.
    std::vector<Tensor> out;
    absl::Status s =
        executors_[0]->Run(UnitArgs(step, args.step_id, std::move(unit_feeds[0])), &out);
    UnitDone(step, 0, std::move(s), std::move(out));
  } else {
    start(0, std::move(unit_feeds[0]));
  }
  step->Unref();  // The launcher's reference.
}

StepArgs GraphRunner::UnitArgs(Step* step, int64_t step_id, std::vector<Tensor> feeds) const {
  StepArgs sa;
  sa.step_id = step_id;
  sa.feed_values = std::move(feeds);
  sa.cancellation = &step->cancellation;
  sa.rendezvous = step->rendezvous;
  sa.trace = step->trace;
  return sa;
}

void GraphRunner::UnitDone(Step* step, int unit, absl::Status status,
                           std::vector<Tensor> outputs) const {
  if (!status.ok()) {
    step->Abort(status);
  } else {
    absl::MutexLock lock(&step->mu);
    const std::vector<int>& positions = unit_fetch_positions_[unit];
    for (size_t j = 0; j < outputs.size() && j < positions.size(); ++j) {
      step->fetched[positions[j]] = std::move(outputs[j]);
    }
  }
  if (step->pending_units.fetch_sub(1, std::memory_order_acq_rel) == 1) step->Finish();
}

absl::Status GraphRunner::Run(RunArgs args, std::vector<Tensor>* fetched) {
  absl::Notification finished;
  absl::Status result;
  Launch(
      std::move(args),
      [&](absl::Status s, std::vector<Tensor> out) {
        result = std::move(s);
        if (fetched != nullptr) *fetched = std::move(out);
        finished.Notify();
      },
      /*caller_runs_first=*/true);
  // The partitions usually finish soon after the first, which ran on this thread: spin briefly
  // before sleeping (a hand-off to a spinning thread is ~40 ns, a wake-up ~25 us).
  for (int spin = 0; spin < 2000 && !finished.HasBeenNotified(); ++spin) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
  }
  finished.WaitForNotification();
  return result;
}

}  // namespace sluice
