#include "runtime/exec/executor.h"

#include <atomic>
#include <exception>
#include <new>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "core/status.h"
#include "runtime/kernel/kernel.h"
#include "runtime/kernel/rendezvous.h"
#include "tbb/task_arena.h"
#include "tbb/task_group.h"

namespace sluice {
namespace {

// How many Process calls are on this thread's stack. An async kernel's callback that finds one
// completed inline, on a thread the executor drives; with none it runs on a thread the executor
// does not own (a data-plane reader delivering a tensor). TBB's own notion of "inside an arena"
// cannot tell them apart: a thread that once enqueued a task is attached to the implicit arena.
thread_local int t_process_depth = 0;
// Set while a step's async roots are started: what they complete inline goes to the device's
// entry threads.
thread_local bool t_defer_continuations = false;
// Set while a thread the executor does not drive (a data-plane reader) runs the nodes a
// received tensor made ready: only those that can neither block nor take long run there.
thread_local bool t_cheap_only = false;

struct ProcessDepthGuard {
  ProcessDepthGuard() { ++t_process_depth; }
  ~ProcessDepthGuard() { --t_process_depth; }
};

// A kernel returns Status; an exception escaping one (std::bad_alloc from a container, a bug)
// must still end as the node's error, never unwind through a oneTBB task.
absl::Status ComputeCatching(OpKernel* kernel, OpKernelContext* ctx) {
  try {
    return kernel->Compute(ctx);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of memory (std::bad_alloc inside the kernel)");
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("the kernel threw an exception: ", e.what()));
  }
}

// Static, per-executor description of one node (indices are local to the executor).
struct NodeItem {
  const Node* node = nullptr;
  std::unique_ptr<OpKernel> kernel;  // Null for fed nodes.
  int fed_index = -1;                // >= 0 for fed nodes (their kernels never run).
  std::vector<int> fed_values;       // Per output: index into StepArgs::feed_values.
  int initial_pending = 0;
  int output_base = 0;           // First slot of this node's outputs.
  std::vector<int> input_slots;  // Slot of each data input.
  std::vector<int> successors;   // Local ids of data and control consumers (no duplicates).
  bool expensive = true;
  bool blocks = false;  // OpKernel::MayBlock.
};

// Invariants of a step:
//   - pending[i] counts the in-edges of node i whose source has not completed;
//   - a node runs exactly once, when its pending count reaches zero;
//   - remaining counts nodes not yet completed; the step ends when it reaches zero;
//   - slot_uses[s] counts the readers of slot s still to come (+1 if fetched); the reader that
//     takes it to zero releases the tensor, so memory is freed as soon as possible.
class ExecutorImpl;

struct StepState {
  StepArgs args;
  Executor::DoneCallback done;
  std::unique_ptr<std::atomic<int>[]> pending;
  std::unique_ptr<std::atomic<int>[]> slot_uses;
  std::vector<Tensor> slots;
  std::atomic<int> remaining{0};
  std::atomic<bool> failed{false};
  absl::Mutex mu;
  absl::Status status ABSL_GUARDED_BY(mu);
  std::optional<CancellationManager::Token> cancel_token;
  tbb::task_group* group = nullptr;  // Set for blocking runs.

  // True for the step's first error.
  bool RecordError(absl::Status s) {
    bool first;
    {
      absl::MutexLock lock(&mu);
      first = status.ok();
      if (first) status = std::move(s);
    }
    failed.store(true, std::memory_order_release);
    return first;
  }
};

class ExecutorImpl : public Executor {
 public:
  absl::Status Initialize(const ExecutorParams& params);
  void RunAsync(StepArgs args, DoneCallback done) override {
    Start(std::move(args), std::move(done), nullptr);
  }
  absl::Status Run(StepArgs args, std::vector<Tensor>* fetched) override;
  // Starts a step. With `group`, scheduled nodes go to that task_group so that a blocking
  // caller can help run them; without, they are enqueued on the arena.
  void Start(StepArgs args, DoneCallback done, tbb::task_group* group);
  CpuDevice* device() const { return device_; }
  int num_nodes() const override { return static_cast<int>(items_.size()); }

 private:
  // Runs the nodes in `ready` and then, on this thread, every cheap node they make ready; of
  // the expensive ones, one stays on this thread and the rest are scheduled.
  void Process(StepState* step, std::vector<int> ready) const;
  // Moves a node's inputs out of their slots; false when the step has failed (skip the kernel).
  bool GatherInputs(StepState* step, const NodeItem& item, OpKernelContext::Params* p) const;
  // Checks a finished kernel's status and outputs; records errors against the node.
  void CollectOutputs(StepState* step, const NodeItem& item, absl::Status s, OpKernelContext* ctx,
                      std::vector<Tensor>* outputs) const;
  // Stores outputs, releases successors (into `ready` or the scheduler), counts the node done.
  void Complete(StepState* step, const NodeItem& item, std::vector<Tensor>* outputs,
                std::vector<int>* ready) const;
  void Finish(StepState* step) const;
  void Schedule(StepState* step, int id) const;
  // Records a traced step's node (see StepArgs::trace).
  // `sent`: a _Send's bytes (its input's), -1 for other nodes.
  void Trace(StepState* step, const NodeItem& item, int64_t start,
             const std::vector<Tensor>& outputs, int64_t sent) const;

  CpuDevice* device_ = nullptr;
  std::vector<NodeItem> items_;
  // The roots by how a step starts them (see Start): async kernels (receives), those run on
  // the starting thread (cheap ones and one expensive one), and those scheduled.
  std::vector<int> async_roots_, inline_roots_, scheduled_roots_;
  std::vector<int> initial_slot_uses_;
  std::vector<int> fetch_slots_;
  int num_slots_ = 0;
};

absl::Status ExecutorImpl::Initialize(const ExecutorParams& params) {
  device_ = params.device;
  std::vector<const Node*> nodes = params.nodes;
  if (nodes.empty()) {
    nodes = PruneForFetches(*params.graph, params.fetches, params.targets, params.feeds);
  }
  absl::flat_hash_map<const Node*, int> local;
  for (const Node* n : nodes) local.emplace(n, static_cast<int>(local.size()));
  for (const Endpoint& f : params.fetches) {
    if (!local.contains(f.node)) {
      return absl::InvalidArgumentError(
          absl::StrCat("fetch ", f.DebugString(), " is not among the executor's nodes"));
    }
  }
  items_.resize(nodes.size());
  for (size_t i = 0; i < params.feeds.size(); ++i) {
    auto it = local.find(params.feeds[i].node);
    if (it == local.end()) continue;
    NodeItem& item = items_[it->second];
    item.fed_index = static_cast<int>(i);
    item.fed_values.resize(params.feeds[i].node->num_outputs(), -1);
    item.fed_values[params.feeds[i].index] = static_cast<int>(i);
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    NodeItem& item = items_[i];
    item.node = nodes[i];
    item.output_base = num_slots_;
    num_slots_ += nodes[i]->num_outputs();
  }
  initial_slot_uses_.assign(num_slots_, 0);
  for (size_t i = 0; i < nodes.size(); ++i) {
    NodeItem& item = items_[i];
    const Node* n = item.node;
    if (item.fed_index >= 0) {
      item.expensive = false;  // Hands a fed value on: never worth another thread.
      // Every output a consumer or fetch may read must be fed.
      for (int o = 0; o < n->num_outputs(); ++o) {
        if (item.fed_values[o] < 0) {
          return absl::InvalidArgumentError(
              absl::StrCat(n->DebugName(), ": output ", o,
                           " is not fed, but the node is (partial feeds of "
                           "multi-output nodes are not supported)"));
        }
      }
    } else {
      SLUICE_ASSIGN_OR_RETURN(item.kernel,
                              KernelRegistry::Global()->CreateKernel(*n, device_->device_type()));
      item.expensive = item.kernel->IsExpensive() || item.kernel->AsAsync() != nullptr;
      item.blocks = item.kernel->MayBlock();
      for (const Endpoint& in : n->inputs()) {
        auto it = local.find(in.node);
        if (it == local.end()) {
          return absl::InvalidArgumentError(absl::StrCat(
              n->DebugName(), ": input ", in.DebugString(), " is not among the executor's nodes"));
        }
        int slot = items_[it->second].output_base + in.index;
        item.input_slots.push_back(slot);
        ++initial_slot_uses_[slot];
      }
    }
  }
  // Successor lists and pending counts (an edge into a fed node does not count).
  for (size_t i = 0; i < nodes.size(); ++i) {
    for (const OutEdge& e : nodes[i]->out_edges()) {
      auto it = local.find(e.dst);
      if (it == local.end()) continue;
      NodeItem& dst = items_[it->second];
      if (dst.fed_index >= 0) continue;
      std::vector<int>& succ = items_[i].successors;
      if (std::find(succ.begin(), succ.end(), it->second) == succ.end()) {
        succ.push_back(it->second);
        ++dst.initial_pending;
      }
    }
  }
  bool kept_expensive = false;
  for (size_t i = 0; i < items_.size(); ++i) {
    const NodeItem& item = items_[i];
    if (item.initial_pending != 0) continue;
    if (item.fed_index < 0 && item.kernel->AsAsync() != nullptr) {
      async_roots_.push_back(static_cast<int>(i));
    } else if (!item.expensive || !kept_expensive) {
      kept_expensive |= item.expensive;
      inline_roots_.push_back(static_cast<int>(i));
    } else {
      scheduled_roots_.push_back(static_cast<int>(i));
    }
  }
  for (const Endpoint& f : params.fetches) {
    int slot = items_[local[f.node]].output_base + f.index;
    fetch_slots_.push_back(slot);
    ++initial_slot_uses_[slot];
  }
  return absl::OkStatus();
}

void ExecutorImpl::Start(StepArgs args, DoneCallback done, tbb::task_group* group) {
  auto* step = new StepState;
  step->args = std::move(args);
  step->done = std::move(done);
  step->group = group;
  const int n = static_cast<int>(items_.size());
  step->pending.reset(new std::atomic<int>[n]);
  for (int i = 0; i < n; ++i) {
    step->pending[i].store(items_[i].initial_pending, std::memory_order_relaxed);
  }
  step->slot_uses.reset(new std::atomic<int>[num_slots_]);
  for (int i = 0; i < num_slots_; ++i) {
    step->slot_uses[i].store(initial_slot_uses_[i], std::memory_order_relaxed);
  }
  step->slots.resize(num_slots_);
  step->remaining.store(n, std::memory_order_relaxed);
  if (CancellationManager* cm = step->args.cancellation) {
    step->cancel_token = cm->RegisterCallback([step, cm] { step->RecordError(cm->reason()); });
    if (!step->cancel_token) step->RecordError(cm->reason());
  }
  if (n == 0) {
    Finish(step);
    return;
  }
  // Async roots (receives) all start here, before any other node of the step: a receive that
  // is not yet waiting leaves its tensor unconsumed, so the sender gets no credit back, and a
  // sender blocked for a credit holds an arena thread. With receives queued behind blocked
  // sends on both sides, two workers exchanging many tensors in a step deadlocked. What these
  // complete at once (a tensor already here) goes to the entry threads, so this thread does not
  // block before the last one is waiting. Then cheap roots and one expensive root run on this
  // thread, and other expensive roots are scheduled. (A root not yet processed keeps the step
  // alive.)
  if (!async_roots_.empty()) {
    const bool outer = t_defer_continuations;
    t_defer_continuations = true;
    Process(step, async_roots_);
    t_defer_continuations = outer;
  }
  for (int r : scheduled_roots_) Schedule(step, r);
  if (!inline_roots_.empty()) Process(step, inline_roots_);
}

void ExecutorImpl::Schedule(StepState* step, int id) const {
  auto task = [this, step, id] { Process(step, {id}); };
  if (step->group != nullptr) {
    tbb::task_group* group = step->group;
    device_->arena().execute([group, &task] { group->run(task); });
  } else {
    device_->arena().enqueue(task);
  }
}

bool ExecutorImpl::GatherInputs(StepState* step, const NodeItem& item,
                                OpKernelContext::Params* p) const {
  p->node = item.node;
  p->inputs.resize(item.input_slots.size());
  for (size_t i = 0; i < item.input_slots.size(); ++i) {
    int slot = item.input_slots[i];
    p->inputs[i] = step->slots[slot];
    if (step->slot_uses[slot].fetch_sub(1, std::memory_order_acq_rel) == 1) {
      step->slots[slot] = Tensor();  // Last reader: free the buffer now.
    }
  }
  if (step->failed.load(std::memory_order_acquire)) return false;
  p->eigen_device = &device_->eigen_device();
  p->resources = device_->resources();
  p->cancellation = step->args.cancellation;
  p->rendezvous = step->args.rendezvous;
  p->step_id = step->args.step_id;
  p->budget = step->args.budget.get();  // Borrowed: no reference count touched per node.
  return true;
}

void ExecutorImpl::CollectOutputs(StepState* step, const NodeItem& item, absl::Status s,
                                  OpKernelContext* ctx, std::vector<Tensor>* outputs) const {
  const Node* n = item.node;
  if (s.ok()) {
    for (int o = 0; o < n->num_outputs(); ++o) {
      const Tensor& t = ctx->outputs()[o];
      if (!t.IsInitialized() || t.dtype() != n->output_type(o)) {
        s = absl::InternalError(absl::StrCat("kernel did not produce output ", o, " of dtype ",
                                             DTypeName(n->output_type(o))));
        break;
      }
    }
  }
  if (!s.ok()) {
    absl::Status error(s.code(), absl::StrCat(n->DebugName(), ": ", s.message()));
    // The step's other transfers will never complete (this node sends nothing): fail them now,
    // so a receive here, and through the rendezvous the peers' partitions, end too. The node
    // has not completed yet, so the step cannot finish (and be freed) during the abort.
    if (step->RecordError(error) && step->args.rendezvous != nullptr) {
      step->args.rendezvous->StartAbort(error);
    }
    return;
  }
  *outputs = std::move(ctx->outputs());
}

void ExecutorImpl::Complete(StepState* step, const NodeItem& item, std::vector<Tensor>* outputs,
                            std::vector<int>* ready) const {
  for (size_t o = 0; o < outputs->size(); ++o) {
    int slot = item.output_base + static_cast<int>(o);
    if (step->slot_uses[slot].load(std::memory_order_relaxed) > 0) {
      step->slots[slot] = std::move((*outputs)[o]);
    }
  }
  bool keep_expensive = ready->empty();
  for (int succ : item.successors) {
    if (step->pending[succ].fetch_sub(1, std::memory_order_acq_rel) != 1) continue;
    if (!items_[succ].expensive) {
      ready->push_back(succ);
    } else if (keep_expensive) {
      keep_expensive = false;
      ready->push_back(succ);
    } else {
      Schedule(step, succ);
    }
  }
  // The step ends when its last node completes; with `ready` non-empty it cannot end here.
  if (step->remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) Finish(step);
}

void ExecutorImpl::Process(StepState* step, std::vector<int> ready) const {
  ProcessDepthGuard depth;
  const bool cheap_only = t_cheap_only;  // Read once: thread_local reads cost in a shared object.
  std::vector<Tensor> outputs;
  while (!ready.empty()) {
    int id = ready.back();
    ready.pop_back();
    const NodeItem& item = items_[id];
    if (cheap_only && (item.expensive || item.blocks)) {
      device_->Submit([this, step, id] { Process(step, {id}); });
      continue;
    }
    outputs.clear();
    if (item.fed_index >= 0) {
      for (int v : item.fed_values) outputs.push_back(step->args.feed_values[v]);
    } else {
      OpKernelContext::Params p;
      if (GatherInputs(step, item, &p)) {
        if (AsyncOpKernel* async = item.kernel->AsAsync()) {
          // The node completes in the callback, possibly on another thread. A thread the
          // executor drives carries on with the nodes it made ready; any other thread (a
          // data-plane reader delivering a received tensor) runs only cheap nodes that cannot
          // block and hands the rest to the device's entry threads (CpuDevice::Submit) without
          // waiting: run there, a Send could block it on the network while the peer's reader is
          // blocked the same way on us (two workers exchanging large tensors deadlocked so).
          // Cheap nodes stay: a hand-off to an entry thread is a wake-up (~25 us here).
          auto* ctx = new OpKernelContext(std::move(p));
          const int64_t start = step->args.trace != nullptr ? StepTrace::NowNanos() : 0;
          async->ComputeAsync(ctx, [this, step, id, ctx, start] {
            std::vector<Tensor> outs;
            CollectOutputs(step, items_[id], ctx->status(), ctx, &outs);
            delete ctx;
            if (step->args.trace != nullptr) Trace(step, items_[id], start, outs, -1);
            std::vector<int> next;
            Complete(step, items_[id], &outs, &next);
            if (next.empty()) return;
            if (t_process_depth > 0 && !t_defer_continuations) {
              Process(step, std::move(next));
            } else if (t_process_depth == 0) {
              t_cheap_only = true;
              Process(step, std::move(next));
              t_cheap_only = false;
            } else {
              for (int n : next) device_->Submit([this, step, n] { Process(step, {n}); });
            }
          });
          continue;
        }
        OpKernelContext ctx(std::move(p));
        const bool traced = step->args.trace != nullptr;
        const int64_t start = traced ? StepTrace::NowNanos() : 0;
        // A _Send's bytes are its input's, read before the kernel may release it.
        const int64_t sent = traced && ctx.num_inputs() > 0 && item.node->op() == "_Send"
                                 ? static_cast<int64_t>(ctx.input(0).TotalBytes())
                                 : -1;
        absl::Status s = ComputeCatching(item.kernel.get(), &ctx);
        CollectOutputs(step, item, std::move(s), &ctx, &outputs);
        if (traced) Trace(step, item, start, outputs, sent);
      }
    }
    Complete(step, item, &outputs, &ready);
  }
}

void ExecutorImpl::Trace(StepState* step, const NodeItem& item, int64_t start,
                         const std::vector<Tensor>& outputs, int64_t sent) const {
  NodeExecStats stats;
  stats.device = device_->name();
  stats.node = item.node->name();
  stats.op = item.node->op();
  stats.start_ns = start;
  stats.end_ns = StepTrace::NowNanos();
  stats.thread = StepTrace::ThreadId();
  if (item.node->op() == "_Send" || item.node->op() == "_Recv") {
    auto name = item.node->GetAttr<std::string>("tensor_name");
    auto from = item.node->GetAttr<std::string>("send_device");
    auto to = item.node->GetAttr<std::string>("recv_device");
    if (name.ok() && from.ok() && to.ok())
      stats.transfer = absl::StrCat(*from, ";", *to, ";", *name);
    if (item.node->op() == "_Send") {
      stats.bytes = sent;
    } else if (!outputs.empty()) {
      stats.bytes = static_cast<int64_t>(outputs[0].TotalBytes());
    }
  }
  step->args.trace->Add(std::move(stats));
}

void ExecutorImpl::Finish(StepState* step) const {
  if (step->cancel_token) step->args.cancellation->DeregisterCallback(*step->cancel_token);
  absl::Status status;
  {
    absl::MutexLock lock(&step->mu);
    status = step->status;
  }
  std::vector<Tensor> fetched;
  if (status.ok()) {
    fetched.reserve(fetch_slots_.size());
    for (int slot : fetch_slots_) fetched.push_back(step->slots[slot]);
  }
  DoneCallback done = std::move(step->done);
  delete step;
  done(std::move(status), std::move(fetched));
}

absl::Status ExecutorImpl::Run(StepArgs args, std::vector<Tensor>* fetched) {
  // The calling thread runs what it can inline, then helps with the nodes it scheduled (it
  // joins the arena through the task_group), and only then waits for async kernels: first
  // spinning briefly (a hand-off to a spinning thread is ~40 ns, a wake-up ~25 us).
  tbb::task_group group;
  absl::Notification finished;
  absl::Status result;
  Start(
      std::move(args),
      [&](absl::Status s, std::vector<Tensor> out) {
        result = std::move(s);
        if (fetched != nullptr) *fetched = std::move(out);
        finished.Notify();
      },
      &group);
  tbb::task_arena& arena = device()->arena();
  if (!finished.HasBeenNotified()) arena.execute([&group] { group.wait(); });
  for (int spin = 0; spin < 2000 && !finished.HasBeenNotified(); ++spin) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
  }
  finished.WaitForNotification();
  // Tasks scheduled after the first wait (by async kernels) must be gone before `group` is.
  arena.execute([&group] { group.wait(); });
  return result;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Executor>> Executor::Create(const ExecutorParams& params) {
  if (params.graph == nullptr || params.device == nullptr) {
    return absl::InvalidArgumentError("executor needs a graph and a device");
  }
  if (!params.graph->finalized()) {
    return absl::FailedPreconditionError("executor needs a finalized graph");
  }
  auto exec = std::make_unique<ExecutorImpl>();
  SLUICE_RETURN_IF_ERROR(exec->Initialize(params));
  return std::unique_ptr<Executor>(std::move(exec));
}

}  // namespace sluice
