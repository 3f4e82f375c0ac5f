#include "runtime/exec/executor.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <new>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "core/status.h"
#include "graph/shape_inference.h"
#include "gtest/gtest.h"
#include "ops/register.h"
#include "runtime/kernel/kernel.h"
#include "runtime/kernel/rendezvous.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

// Test-only ops: int64 addition (an "expensive" kernel, so it is scheduled on the arena), a
// kernel that always fails, and an async kernel that waits until the step is cancelled.
class AddIntOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    SLUICE_ASSIGN_OR_RETURN(Tensor * out, ctx->allocate_output(0, TensorShape()));
    *out->data<int64_t>() = ctx->input(0).scalar<int64_t>() + ctx->input(1).scalar<int64_t>();
    return absl::OkStatus();
  }
};

class FailOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext*) override {
    return absl::InvalidArgumentError("deliberate failure");
  }
};

// Throws std::bad_alloc when named "bad_alloc", else a std::runtime_error.
class ThrowOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext*) override {
    if (node().name() == "bad_alloc") throw std::bad_alloc();
    throw std::runtime_error("vector::_M_range_check");
  }
};

absl::Notification* wait_entered = nullptr;

class WaitForCancelOp : public AsyncOpKernel {
 public:
  using AsyncOpKernel::AsyncOpKernel;
  void ComputeAsync(OpKernelContext* ctx, std::function<void()> done) override {
    CancellationManager* cm = ctx->cancellation();
    auto finish = [ctx, done] {
      ctx->SetStatus(absl::CancelledError("wait aborted"));
      done();
    };
    if (cm == nullptr || !cm->RegisterCallback(finish)) {
      finish();
      return;
    }
    wait_entered->Notify();
  }
};

// Completes on a thread of its own, as a network receive would.
std::vector<std::thread>* async_threads = nullptr;
absl::Mutex async_threads_mu;

class OffThreadIncrementOp : public AsyncOpKernel {
 public:
  using AsyncOpKernel::AsyncOpKernel;
  void ComputeAsync(OpKernelContext* ctx, std::function<void()> done) override {
    absl::MutexLock lock(&async_threads_mu);
    async_threads->emplace_back([ctx, done] {
      absl::StatusOr<Tensor*> out = ctx->allocate_output(0, TensorShape());
      **out = Tensor::Scalar<int64_t>(ctx->input(0).scalar<int64_t>() + 1);
      done();
    });
  }
};

// Completes on one long-lived thread, as a data-plane reader delivers every received tensor; a
// RecordThread kernel after it notes which threads ran it.
class DeliveryThread {
 public:
  DeliveryThread() : thread_([this] { Loop(); }) {}
  ~DeliveryThread() {
    Post(nullptr);
    thread_.join();
  }
  void Post(std::function<void()> work) {
    absl::MutexLock lock(&mu_);
    queue_.push_back(std::move(work));
  }
  std::thread::id id() const { return thread_.get_id(); }

 private:
  void Loop() {
    for (;;) {
      std::function<void()> work;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](std::deque<std::function<void()>>* q) { return !q->empty(); }, &queue_));
        work = std::move(queue_.front());
        queue_.pop_front();
      }
      if (!work) return;
      work();
    }
  }
  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

DeliveryThread* delivery = nullptr;
absl::Mutex recorded_mu;
std::set<std::thread::id>* recorded_threads = nullptr;

class DeliveredIncrementOp : public AsyncOpKernel {
 public:
  using AsyncOpKernel::AsyncOpKernel;
  void ComputeAsync(OpKernelContext* ctx, std::function<void()> done) override {
    delivery->Post([ctx, done] {
      absl::StatusOr<Tensor*> out = ctx->allocate_output(0, TensorShape());
      **out = Tensor::Scalar<int64_t>(ctx->input(0).scalar<int64_t>() + 1);
      done();
    });
  }
};

class RecordThreadOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    {
      absl::MutexLock lock(&recorded_mu);
      recorded_threads->insert(std::this_thread::get_id());
    }
    ctx->set_output(0, ctx->input(0));
    return absl::OkStatus();
  }
};

class RecordThreadCheapOp : public RecordThreadOp {
 public:
  using RecordThreadOp::RecordThreadOp;
  bool IsExpensive() const override { return false; }
};

// Records the threads its sends ran on.
class RecordingRendezvous : public LocalRendezvous {
 public:
  absl::Status Send(const std::string& key, Tensor value) override {
    {
      absl::MutexLock lock(&mu_);
      send_threads_.insert(std::this_thread::get_id());
    }
    return LocalRendezvous::Send(key, std::move(value));
  }
  std::set<std::thread::id> send_threads() {
    absl::MutexLock lock(&mu_);
    return send_threads_;
  }

 private:
  absl::Mutex mu_;
  std::set<std::thread::id> send_threads_ ABSL_GUARDED_BY(mu_);
};

// Counts its starts and completes at once; CheckAllStarted fails unless `expected_starts` have
// started in this step.
std::atomic<int> starts{0};
int expected_starts = 0;

class CountStartOp : public AsyncOpKernel {
 public:
  using AsyncOpKernel::AsyncOpKernel;
  void ComputeAsync(OpKernelContext* ctx, std::function<void()> done) override {
    starts.fetch_add(1);
    ctx->set_output(0, Tensor::Scalar<int64_t>(1));
    done();
  }
};

class CheckAllStartedOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  absl::Status Compute(OpKernelContext* ctx) override {
    if (starts.load() != expected_starts) {
      return absl::InternalError(
          absl::StrCat(starts.load(), " of ", expected_starts, " async roots started"));
    }
    ctx->set_output(0, Tensor::Scalar<int64_t>(0));
    return absl::OkStatus();
  }
};

void RegisterTestOps() {
  static bool once = [] {
    OpRegistry* ops = OpRegistry::Global();
    KernelRegistry* kernels = KernelRegistry::Global();
    RegisterAllOps();
    EXPECT_TRUE(ops->Register(OpDefBuilder("AddInt")
                                  .Input("x: int64")
                                  .Input("y: int64")
                                  .Output("z: int64")
                                  .SetShapeFn(ScalarShape))
                    .ok());
    EXPECT_TRUE(
        kernels->Register("AddInt", kDeviceCpu, DType::kInvalid, MakeKernel<AddIntOp>).ok());
    EXPECT_TRUE(ops->Register(OpDefBuilder("Fail").Input("x: int64").Output("y: int64")).ok());
    EXPECT_TRUE(kernels->Register("Fail", kDeviceCpu, DType::kInvalid, MakeKernel<FailOp>).ok());
    EXPECT_TRUE(ops->Register(OpDefBuilder("Throw").Input("x: int64").Output("y: int64")).ok());
    EXPECT_TRUE(kernels->Register("Throw", kDeviceCpu, DType::kInvalid, MakeKernel<ThrowOp>).ok());
    EXPECT_TRUE(
        ops->Register(OpDefBuilder("WaitForCancel").Input("x: int64").Output("y: int64")).ok());
    EXPECT_TRUE(
        kernels->Register("WaitForCancel", kDeviceCpu, DType::kInvalid, MakeKernel<WaitForCancelOp>)
            .ok());
    EXPECT_TRUE(ops->Register(OpDefBuilder("OffThreadIncrement")
                                  .Input("x: int64")
                                  .Output("y: int64")
                                  .SetShapeFn(ScalarShape))
                    .ok());
    EXPECT_TRUE(kernels
                    ->Register("OffThreadIncrement", kDeviceCpu, DType::kInvalid,
                               MakeKernel<OffThreadIncrementOp>)
                    .ok());
    for (const char* name : {"CountStart", "CheckAllStarted"}) {
      EXPECT_TRUE(
          ops->Register(OpDefBuilder(name).Output("y: int64").SetShapeFn(ScalarShape)).ok());
    }
    EXPECT_TRUE(
        kernels->Register("CountStart", kDeviceCpu, DType::kInvalid, MakeKernel<CountStartOp>)
            .ok());
    EXPECT_TRUE(kernels
                    ->Register("CheckAllStarted", kDeviceCpu, DType::kInvalid,
                               MakeKernel<CheckAllStartedOp>)
                    .ok());
    for (const char* name : {"DeliveredIncrement", "RecordThread", "RecordThreadCheap"}) {
      EXPECT_TRUE(
          ops->Register(
                 OpDefBuilder(name).Input("x: int64").Output("y: int64").SetShapeFn(ScalarShape))
              .ok());
    }
    EXPECT_TRUE(kernels
                    ->Register("DeliveredIncrement", kDeviceCpu, DType::kInvalid,
                               MakeKernel<DeliveredIncrementOp>)
                    .ok());
    EXPECT_TRUE(
        kernels->Register("RecordThread", kDeviceCpu, DType::kInvalid, MakeKernel<RecordThreadOp>)
            .ok());
    EXPECT_TRUE(kernels
                    ->Register("RecordThreadCheap", kDeviceCpu, DType::kInvalid,
                               MakeKernel<RecordThreadCheapOp>)
                    .ok());
    return true;
  }();
  (void)once;
}

class ExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override { RegisterTestOps(); }

  Output Const(int64_t v) {
    return SingleOutput(root_.AddNode(
        "Const", {},
        {{"value", AttrValue(Tensor::Scalar<int64_t>(v))}, {"dtype", AttrValue(DType::kInt64)}},
        SourceLocation::Current()));
  }
  Output Op(const std::string& op, std::vector<Input> inputs, const Scope* s = nullptr) {
    return SingleOutput((s ? *s : root_).AddNode(op, inputs, {}, SourceLocation::Current()));
  }
  std::unique_ptr<Executor> Make(std::vector<Output> fetches, std::vector<Output> feeds = {},
                                 std::vector<const Node*> targets = {}) {
    graph_ = *root_.Finalize();
    ExecutorParams p;
    p.graph = graph_.get();
    p.device = &device_;
    for (const Output& f : fetches) p.fetches.push_back(f.endpoint());
    for (const Output& f : feeds) p.feeds.push_back(f.endpoint());
    p.targets = std::move(targets);
    absl::StatusOr<std::unique_ptr<Executor>> e = Executor::Create(p);
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? *std::move(e) : nullptr;
  }

  Scope root_ = ops::NewRootScope();
  std::shared_ptr<const Graph> graph_;
  CpuDevice device_{DeviceOptions{.inter_op_threads = 2, .intra_op_threads = 1}};
};

TEST_F(ExecutorTest, DiamondAndChainComputeTheRightValues) {
  Output a = Const(3);
  Output b = Op("AddInt", {a, a});  // 6
  Output c = Op("AddInt", {a, b});  // 9
  Output d = Op("AddInt", {b, c});  // 15
  Output chain = d;
  for (int i = 0; i < 100; ++i) chain = Op("AddInt", {chain, a});  // 15 + 300
  auto exec = Make({d, chain, b});
  std::vector<Tensor> out;
  ASSERT_TRUE(exec->Run(StepArgs{}, &out).ok());
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].scalar<int64_t>(), 15);
  EXPECT_EQ(out[1].scalar<int64_t>(), 315);
  EXPECT_EQ(out[2].scalar<int64_t>(), 6);
}

TEST_F(ExecutorTest, ATracedStepRecordsEveryNodeOnceAndAnUntracedOneNothing) {
  Output a = Const(3);
  Output b = Op("AddInt", {a, a});
  Output c = Op("AddInt", {b, a});
  auto exec = Make({c});
  StepTrace trace;
  StepArgs args;
  args.trace = &trace;
  const int64_t before = StepTrace::NowNanos();
  std::vector<Tensor> out;
  ASSERT_TRUE(exec->Run(std::move(args), &out).ok());
  const int64_t after = StepTrace::NowNanos();
  std::vector<NodeExecStats> stats = trace.Take();
  std::multiset<std::string> nodes;
  for (const NodeExecStats& s : stats) {
    nodes.insert(s.node);
    EXPECT_LE(before, s.start_ns) << s.node;
    EXPECT_LE(s.start_ns, s.end_ns) << s.node;
    EXPECT_LE(s.end_ns, after) << s.node;
    EXPECT_NE(s.thread, 0u) << s.node;
    EXPECT_EQ(s.device, device_.name());
    EXPECT_EQ(s.bytes, -1) << s.node;
    EXPECT_EQ(s.op, s.node == a.node()->name() ? "Const" : "AddInt");
  }
  EXPECT_EQ(nodes,
            (std::multiset<std::string>{a.node()->name(), b.node()->name(), c.node()->name()}));
  // b runs after a, c after b.
  auto at = [&](const Output& o) {
    return *std::find_if(stats.begin(), stats.end(),
                         [&](const NodeExecStats& s) { return s.node == o.node()->name(); });
  };
  EXPECT_LE(at(a).end_ns, at(b).start_ns);
  EXPECT_LE(at(b).end_ns, at(c).start_ns);
  ASSERT_TRUE(exec->Run(StepArgs{}, &out).ok());
  EXPECT_TRUE(trace.Take().empty());
}

TEST_F(ExecutorTest, WideFanOutRunsInParallelAndJoins) {
  Output one = Const(1);
  std::vector<Output> level;
  for (int i = 0; i < 256; ++i) level.push_back(Op("AddInt", {one, Const(i)}));
  while (level.size() > 1) {  // Pairwise tree reduction.
    std::vector<Output> next;
    for (size_t i = 0; i < level.size(); i += 2)
      next.push_back(Op("AddInt", {level[i], level[i + 1]}));
    level = next;
  }
  auto exec = Make({level[0]});
  for (int run = 0; run < 20; ++run) {
    std::vector<Tensor> out;
    ASSERT_TRUE(exec->Run(StepArgs{}, &out).ok());
    EXPECT_EQ(out[0].scalar<int64_t>(), 256 + 255 * 256 / 2);
  }
}

TEST_F(ExecutorTest, FeedsReplaceNodesAndConcurrentStepsStayIndependent) {
  Output x = SingleOutput(root_.WithOpName("x").AddNode(
      "Placeholder", {}, {{"dtype", AttrValue(DType::kInt64)}}, SourceLocation::Current()));
  Output y = Op("AddInt", {x, x});
  Output z = Op("AddInt", {y, Const(1)});
  auto exec = Make({z}, {x});
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        StepArgs args;
        int64_t v = t * 1000 + i;
        args.feed_values = {Tensor::Scalar<int64_t>(v)};
        std::vector<Tensor> out;
        absl::Status s = exec->Run(std::move(args), &out);
        if (!s.ok() || out[0].scalar<int64_t>() != 2 * v + 1) wrong.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST_F(ExecutorTest, KernelErrorNamesTheNodeAndLaterStepsStillWork) {
  Output a = Const(1);
  Scope broken = root_.WithOpName("broken");
  Output bad = Op("Fail", {a}, &broken);
  Output after = Op("AddInt", {bad, a});
  Output fine = Op("AddInt", {a, a});
  graph_ = *root_.Finalize();
  ExecutorParams p{.graph = graph_.get(), .device = &device_, .fetches = {after.endpoint()}};
  auto failing = *Executor::Create(p);
  std::vector<Tensor> out;
  EXPECT_TRUE(test::StatusHas(failing->Run(StepArgs{}, &out), absl::StatusCode::kInvalidArgument,
                              "node 'broken' (Fail): deliberate failure"));
  ExecutorParams q{.graph = graph_.get(), .device = &device_, .fetches = {fine.endpoint()}};
  auto working = *Executor::Create(q);
  ASSERT_TRUE(working->Run(StepArgs{}, &out).ok());
  EXPECT_EQ(out[0].scalar<int64_t>(), 2);
}

// An exception escaping a kernel becomes its node's error; it never unwinds through a oneTBB
// task (which terminated the process).
TEST_F(ExecutorTest, AnExceptionFromAKernelIsTheNodesError) {
  Output a = Const(1);
  Scope oom = root_.WithOpName("bad_alloc");
  Scope bug = root_.WithOpName("bug");
  Output thrown_oom = Op("Throw", {a}, &oom);
  Output thrown_bug = Op("Throw", {a}, &bug);
  graph_ = *root_.Finalize();
  std::vector<Tensor> out;
  for (const auto& [fetch, code, text] :
       std::vector<std::tuple<Output, absl::StatusCode, std::string>>{
           {thrown_oom, absl::StatusCode::kResourceExhausted,
            "node 'bad_alloc' (Throw): out of memory (std::bad_alloc inside the kernel)"},
           {thrown_bug, absl::StatusCode::kInternal,
            "node 'bug' (Throw): the kernel threw an exception: vector::_M_range_check"}}) {
    ExecutorParams p{.graph = graph_.get(), .device = &device_, .fetches = {fetch.endpoint()}};
    auto executor = *Executor::Create(p);
    EXPECT_TRUE(test::StatusHas(executor->Run(StepArgs{}, &out), code, text));
  }
}

TEST_F(ExecutorTest, CancellingAStepUnblocksItsWaitingKernel) {
  Output a = Const(1);
  Scope wait = root_.WithOpName("wait");
  Output waiting = Op("WaitForCancel", {a}, &wait);
  auto exec = Make({waiting});
  absl::Notification entered, finished;
  wait_entered = &entered;
  CancellationManager cm;
  StepArgs args;
  args.cancellation = &cm;
  absl::Status result;
  exec->RunAsync(std::move(args), [&](absl::Status s, std::vector<Tensor>) {
    result = s;
    finished.Notify();
  });
  entered.WaitForNotification();
  EXPECT_FALSE(finished.HasBeenNotified());
  cm.StartCancel();
  finished.WaitForNotification();
  EXPECT_EQ(result.code(), absl::StatusCode::kCancelled) << result;
  wait_entered = nullptr;
}

TEST_F(ExecutorTest, AsyncKernelsCompletingOnOtherThreadsContinueTheStep) {
  std::vector<std::thread> threads;
  async_threads = &threads;
  Output a = Const(1);
  std::vector<Output> branches;
  for (int i = 0; i < 8; ++i) {
    Output x = Op("OffThreadIncrement", {a});
    x = Op("AddInt", {x, a});
    branches.push_back(Op("OffThreadIncrement", {x}));
  }
  Output sum = branches[0];
  for (int i = 1; i < 8; ++i) sum = Op("AddInt", {sum, branches[i]});
  auto exec = Make({sum});
  for (int run = 0; run < 10; ++run) {
    std::vector<Tensor> out;
    ASSERT_TRUE(exec->Run(StepArgs{}, &out).ok());
    EXPECT_EQ(out[0].scalar<int64_t>(), 8 * 4);
  }
  absl::MutexLock lock(&async_threads_mu);
  for (auto& t : threads) t.join();
  async_threads = nullptr;
}

// What a completion hands on never runs on the delivering thread when it is expensive, however
// many steps the thread has served: a Send run there can block it on the network while the
// peer's reader is blocked the same way (two workers all-reducing 64 MiB deadlocked from their
// second step, once the reader had enqueued one continuation and so counted as inside an arena
// for oneTBB).
TEST_F(ExecutorTest, ExpensiveNodesMadeReadyByAForeignThreadRunElsewhere) {
  DeliveryThread thread;
  std::set<std::thread::id> threads;
  delivery = &thread;
  recorded_threads = &threads;
  Output a = Const(1);
  std::vector<Output> branches;
  for (int i = 0; i < 4; ++i) {
    branches.push_back(Op("RecordThread", {Op("DeliveredIncrement", {Op("AddInt", {a, a})})}));
  }
  Output sum = branches[0];
  for (int i = 1; i < 4; ++i) sum = Op("AddInt", {sum, branches[i]});
  auto exec = Make({sum});
  for (int run = 0; run < 5; ++run) {
    std::vector<Tensor> out;
    ASSERT_TRUE(exec->Run(StepArgs{}, &out).ok());
    EXPECT_EQ(out[0].scalar<int64_t>(), 4 * 3);
  }
  absl::MutexLock lock(&recorded_mu);
  EXPECT_FALSE(threads.empty());
  EXPECT_EQ(threads.count(thread.id()), 0u) << "a node ran on the delivering thread";
  delivery = nullptr;
  recorded_threads = nullptr;
}

// Cheap nodes a received tensor makes ready run on the delivering thread (a hand-off would cost
// a wake-up), but never a _Send, which may block for a credit; what follows the _Send runs
// elsewhere too.
TEST_F(ExecutorTest, OnlyCheapNonBlockingNodesRunOnTheDeliveringThread) {
  DeliveryThread thread;
  std::set<std::thread::id> threads;
  delivery = &thread;
  recorded_threads = &threads;
  Output received = Op("DeliveredIncrement", {Const(1)});
  Output cheap = Op("RecordThreadCheap", {received});
  const std::string device = "/job:localhost/task:0/device:cpu:0";
  const Node* send = root_.AddNode("_Send", {cheap},
                                   {{"T", AttrValue(DType::kInt64)},
                                    {"tensor_name", AttrValue(std::string("t"))},
                                    {"send_device", AttrValue(device)},
                                    {"recv_device", AttrValue(device)}},
                                   SourceLocation::Current());
  auto exec = Make({cheap}, {}, {send});
  for (int run = 0; run < 5; ++run) {
    RecordingRendezvous rendezvous;
    StepArgs args;
    args.step_id = run + 1;
    args.rendezvous = &rendezvous;
    std::vector<Tensor> out;
    ASSERT_TRUE(exec->Run(std::move(args), &out).ok());
    EXPECT_EQ(out[0].scalar<int64_t>(), 2);
    EXPECT_EQ(rendezvous.send_threads().size(), 1u);
    EXPECT_EQ(rendezvous.send_threads().count(thread.id()), 0u)
        << "a _Send ran on the delivering thread";
  }
  absl::MutexLock lock(&recorded_mu);
  EXPECT_EQ(threads, std::set<std::thread::id>{thread.id()})
      << "a cheap node was handed off instead of running where its input arrived";
  delivery = nullptr;
  recorded_threads = nullptr;
}

// Every async root (a receive) of a step is waiting before any other node runs: a receive left
// queued behind sends blocked for credits never returns the credit its sender waits for.
TEST_F(ExecutorTest, EveryAsyncRootStartsBeforeAnyOtherNode) {
  std::vector<Output> parts;
  for (int i = 0; i < 3; ++i) parts.push_back(Op("CheckAllStarted", {}));
  parts.push_back(Op("AddInt", {Const(1), Const(2)}));
  for (int i = 0; i < 6; ++i) parts.push_back(Op("CountStart", {}));
  Output sum = parts[0];
  for (size_t i = 1; i < parts.size(); ++i) sum = Op("AddInt", {sum, parts[i]});
  auto exec = Make({sum});
  expected_starts = 6;
  for (int run = 0; run < 20; ++run) {
    starts.store(0);
    std::vector<Tensor> out;
    absl::Status s = exec->Run(StepArgs{}, &out);
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_EQ(out[0].scalar<int64_t>(), 3 + 6);
  }
}

TEST_F(ExecutorTest, AlreadyCancelledStepFailsFast) {
  Output a = Const(1);
  Output b = Op("AddInt", {a, a});
  auto exec = Make({b});
  CancellationManager cm;
  cm.StartCancel(absl::CancelledError("user gave up"));
  StepArgs args;
  args.cancellation = &cm;
  std::vector<Tensor> out;
  EXPECT_TRUE(test::StatusHas(exec->Run(std::move(args), &out), absl::StatusCode::kCancelled,
                              "user gave up"));
}

TEST_F(ExecutorTest, MissingKernelIsReportedAtCreation) {
  static const bool registered =
      OpRegistry::Global()->Register(OpDefBuilder("NoKernel").Output("y: int64")).ok();
  ASSERT_TRUE(registered);
  Output n = Op("NoKernel", {});
  graph_ = *root_.Finalize();
  ExecutorParams p{.graph = graph_.get(), .device = &device_, .fetches = {n.endpoint()}};
  EXPECT_TRUE(test::StatusHas(Executor::Create(p).status(), absl::StatusCode::kNotFound,
                              "(NoKernel): no CPU kernel registered for dtype invalid"));
}

}  // namespace
}  // namespace sluice
