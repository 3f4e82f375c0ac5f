// Session over several virtual CPU devices: placement, partitioning and the partitioned run
// give the same results as one device; variables stay on their device; errors and cancellation
// end every partition.
#include <atomic>
#include <random>
#include <set>
#include <thread>

#include "absl/synchronization/notification.h"
#include "graph/shape_inference.h"
#include "gtest/gtest.h"
#include "ops/all_ops.h"
#include "ops/op_builder.h"
#include "ops/register.h"
#include "runtime/exec/graph_runner.h"
#include "runtime/session/session.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

using test::Dense;
using test::StatusHas;
using test::TensorNear;

std::string Cpu(int i) { return absl::StrCat("/job:localhost/task:0/device:cpu:", i); }

std::unique_ptr<Session> MakeSession(const Scope& root, int num_devices,
                                     PlacerOptions placement = {}) {
  absl::StatusOr<std::shared_ptr<const Graph>> graph = root.Finalize();
  EXPECT_TRUE(graph.ok()) << graph.status();
  SessionOptions opts;
  opts.num_devices = num_devices;
  opts.placement = std::move(placement);
  opts.device.inter_op_threads = 2;
  opts.device.intra_op_threads = 1;
  absl::StatusOr<std::unique_ptr<Session>> s = Session::Create(*graph, opts);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *std::move(s) : nullptr;
}

Tensor RandomTensor(TensorShape shape, uint32_t seed, float scale = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  Tensor t(DType::kFloat32, shape);
  for (int64_t i = 0; i < t.num_elements(); ++i) t.data<float>()[i] = u(rng);
  return t;
}

// A small MLP forward pass; `device(layer)` is the request for each layer ("" for none).
struct Mlp {
  Output x, probs, logits;
};
Mlp BuildMlp(const Scope& root, const std::function<std::string(int)>& device) {
  Mlp m;
  m.x = ops::Placeholder(root.WithOpName("x"), DType::kFloat32, TensorShape({-1, 16}));
  Output h = m.x;
  int in = 16;
  for (int layer = 0; layer < 4; ++layer) {
    Scope s = root.NewSubScope(absl::StrCat("layer", layer)).WithDevice(device(layer));
    int out = layer == 3 ? 5 : 32;
    Output w = ops::Const(s.WithOpName("w"), RandomTensor(TensorShape({in, out}), 10 + layer));
    Output b = ops::Const(s.WithOpName("b"), RandomTensor(TensorShape({out}), 20 + layer));
    h = Dense(s, h, w, b);
    if (layer < 3) h = ops::Tanh(s, h);
    in = out;
  }
  m.logits = h;
  m.probs = ops::Softmax(root.WithOpName("probs"), h);
  return m;
}

TEST(MultiDeviceSessionTest, ForwardPassMatchesOneDeviceWhateverThePlacement) {
  Tensor x = RandomTensor(TensorShape({8, 16}), 1);
  std::vector<Tensor> reference;
  {
    Scope root = ops::NewRootScope();
    Mlp m = BuildMlp(root, [](int) { return ""; });
    auto session = MakeSession(root, 1);
    ASSERT_TRUE(session->Run({{m.x, x}}, {m.probs, m.logits}, &reference).ok());
    EXPECT_EQ(session->placement(), nullptr);
  }
  for (int n : {2, 3, 4}) {
    for (bool explicit_layers : {false, true}) {
      Scope root = ops::NewRootScope();
      Mlp m = BuildMlp(root, [&](int layer) { return explicit_layers ? Cpu(layer % n) : ""; });
      auto session = MakeSession(root, n);
      ASSERT_NE(session, nullptr);
      ASSERT_NE(session->placement(), nullptr);
      EXPECT_EQ(session->num_devices(), n);
      std::vector<Tensor> out;
      for (int rep = 0; rep < 3; ++rep) {
        absl::Status s = session->Run({{m.x, x}}, {m.probs, m.logits}, &out);
        ASSERT_TRUE(s.ok()) << s;
        EXPECT_TRUE(TensorNear(out[0], reference[0], 1e-6, 1e-5)) << n;
        EXPECT_TRUE(TensorNear(out[1], reference[1], 1e-6, 1e-5)) << n;
      }
      EXPECT_EQ(session->num_cached_executors(), 1);
      if (explicit_layers) {
        const Graph& g = session->graph();
        EXPECT_EQ(session->placement()->DeviceOf(g.FindNode("layer1/MatMul")), Cpu(1 % n));
        EXPECT_EQ(session->placement()->DeviceOf(g.FindNode("layer3/w")), Cpu(3 % n));
      }
    }
  }
}

TEST(MultiDeviceSessionTest, VariablesLiveOnTheirDeviceAndPersistAcrossSignatures) {
  Scope root = ops::NewRootScope();
  Output v = ops::Variable(root.WithOpName("v").WithDevice("/device:cpu:2"), TensorShape({2}),
                           DType::kFloat32);
  Output init = ops::Assign(root.WithOpName("init"), v, Tensor::FromVector<float>({1, 2}));
  Output bump = ops::AssignAdd(root.WithOpName("bump").WithDevice("/device:cpu:2"), v,
                               Tensor::FromVector<float>({10, 10}));
  Output twice = ops::Mul(root.WithOpName("twice").WithDevice("/device:cpu:0"), v, 2.0f);
  auto session = MakeSession(root, 3);
  ASSERT_NE(session, nullptr);
  std::vector<Tensor> out;
  EXPECT_TRUE(StatusHas(session->Run({}, {twice}, &out), absl::StatusCode::kFailedPrecondition,
                        "variable 'v' is not initialized"));
  ASSERT_TRUE(session->Run({}, {}, &out, {init}).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(session->Run({}, {bump}, &out).ok());
  ASSERT_TRUE(session->Run({}, {twice}, &out).ok());
  EXPECT_TRUE(TensorNear(out[0], Tensor::FromVector<float>({62, 64})));
  // The value lives in device 2's ResourceMgr only: every node of the variable went there.
  std::shared_ptr<Variable> var = session->device(2)->resources()->LookupVariable("v");
  ASSERT_NE(var, nullptr);
  {
    absl::MutexLock lock(&var->mu);
    EXPECT_TRUE(var->initialized);
  }
  EXPECT_EQ(session->device(0)->resources()->LookupVariable("v"), nullptr);
  EXPECT_EQ(session->device(1)->resources()->LookupVariable("v"), nullptr);
  for (const Node* n : session->graph().nodes()) {
    if (n->op() == "Variable" || n->op() == "Assign" || n->op() == "AssignAdd") {
      EXPECT_EQ(session->placement()->DeviceOf(n), Cpu(2)) << n->name();
    }
  }
  EXPECT_EQ(session->placement()->DeviceOf(twice.node()), Cpu(0));
}

TEST(MultiDeviceSessionTest, FeedsGoToThePartitionsThatOwnTheFedNodes) {
  Scope root = ops::NewRootScope();
  Output x = ops::Placeholder(root.WithOpName("x").WithDevice("/device:cpu:1"), DType::kFloat32);
  Output a = ops::Neg(root.WithOpName("a").WithDevice("/device:cpu:0"), x);
  Output b = ops::Square(root.WithOpName("b").WithDevice("/device:cpu:2"), x);
  Output c = ops::Add(root.WithOpName("c").WithDevice("/device:cpu:1"), a, b);
  Output d = ops::Mul(root.WithOpName("d").WithDevice("/device:cpu:0"), c, 10.0f);
  auto session = MakeSession(root, 3);
  std::vector<Tensor> out;
  Tensor xv = Tensor::FromVector<float>({1, 2, 3});
  ASSERT_TRUE(session->Run({{x, xv}}, {d, a, x}, &out).ok());
  EXPECT_TRUE(TensorNear(out[0], Tensor::FromVector<float>({0, 20, 60})));
  EXPECT_TRUE(TensorNear(out[1], Tensor::FromVector<float>({-1, -2, -3})));
  EXPECT_TRUE(TensorNear(out[2], xv));
  // Feeding an intermediate (on device 1) cuts off what computes it.
  ASSERT_TRUE(session->Run({{c, Tensor::FromVector<float>({5})}}, {d}, &out).ok());
  EXPECT_TRUE(TensorNear(out[0], Tensor::FromVector<float>({50})));
  // By name too, with a target.
  ASSERT_TRUE(session->Run({{"x", xv}}, {"b:0"}, {"d"}, &out).ok());
  EXPECT_TRUE(TensorNear(out[0], Tensor::FromVector<float>({1, 4, 9})));
  EXPECT_EQ(session->num_cached_executors(), 3);
}

TEST(MultiDeviceSessionTest, PlacementErrorsFailSessionCreation) {
  Scope root = ops::NewRootScope();
  ops::Const(root.WithOpName("k").WithDevice("/device:cpu:5"), Tensor::Scalar<float>(1));
  auto graph = *root.Finalize();
  SessionOptions opts;
  opts.num_devices = 2;
  EXPECT_TRUE(StatusHas(Session::Create(graph, opts).status(), absl::StatusCode::kInvalidArgument,
                        "cannot place node 'k' (Const): no device matches '/device:cpu:5'"));
  opts.placement.allow_soft_placement = true;
  EXPECT_TRUE(Session::Create(graph, opts).ok());
  opts.num_devices = 0;
  EXPECT_TRUE(StatusHas(Session::Create(graph, opts).status(), absl::StatusCode::kInvalidArgument,
                        "num_devices must be at least 1, got 0"));
  // One device ignores requests, as before.
  opts.num_devices = 1;
  opts.placement.allow_soft_placement = false;
  EXPECT_TRUE(Session::Create(graph, opts).ok());
  // Device names follow DeviceOptions::name's job and task.
  opts.num_devices = 2;
  opts.placement.allow_soft_placement = true;
  opts.device.name = "/job:worker/task:3/device:cpu:0";
  auto session = *Session::Create(graph, opts);
  EXPECT_EQ(session->device(1)->name(), "/job:worker/task:3/device:cpu:1");
  EXPECT_EQ(session->placement()->devices[0], "/job:worker/task:3/device:cpu:0");
}

TEST(MultiDeviceSessionTest, KernelErrorInOnePartitionEndsTheStepWithThatError) {
  Scope root = ops::NewRootScope();
  Output a = ops::Placeholder(root.WithOpName("a").WithDevice("/device:cpu:0"), DType::kFloat32);
  Output b = ops::Placeholder(root.WithOpName("b").WithDevice("/device:cpu:0"), DType::kFloat32);
  Output prod = ops::MatMul(root.WithOpName("prod").WithDevice("/device:cpu:1"), a, b);
  // Device 0 waits for the product, which never comes.
  Output after = ops::Neg(root.WithOpName("after").WithDevice("/device:cpu:0"), prod);
  Output other = ops::Neg(root.WithOpName("other").WithDevice("/device:cpu:2"), a);
  auto session = MakeSession(root, 3);
  for (int i = 0; i < 10; ++i) {
    std::vector<Tensor> out;
    absl::Status s = session->Run({{a, Tensor(DType::kFloat32, TensorShape({2, 3}))},
                                   {b, Tensor(DType::kFloat32, TensorShape({4, 5}))}},
                                  {after, other}, &out);
    EXPECT_TRUE(StatusHas(s, absl::StatusCode::kInvalidArgument, "node 'prod' (MatMul): ")) << s;
  }
}

// Blocks until its step is cancelled (a stand-in for a long kernel or a lost peer).
absl::Notification* blocked = nullptr;
class BlockUntilCancelledOp : public AsyncOpKernel {
 public:
  using AsyncOpKernel::AsyncOpKernel;
  void ComputeAsync(OpKernelContext* ctx, std::function<void()> done) override {
    auto finish = [ctx, done] {
      ctx->SetStatus(absl::CancelledError("block aborted"));
      done();
    };
    CancellationManager* cm = ctx->cancellation();
    if (cm == nullptr || !cm->RegisterCallback(finish)) {
      finish();
      return;
    }
    blocked->Notify();
  }
};

void RegisterBlockOp() {
  static bool once = [] {
    RegisterAllOps();
    EXPECT_TRUE(OpRegistry::Global()
                    ->Register(OpDefBuilder("TestBlockUntilCancelled")
                                   .Input("x: float32")
                                   .Output("y: float32")
                                   .SetShapeFn(UnchangedShape))
                    .ok());
    EXPECT_TRUE(KernelRegistry::Global()
                    ->Register("TestBlockUntilCancelled", kDeviceCpu, DType::kInvalid,
                               MakeKernel<BlockUntilCancelledOp>)
                    .ok());
    return true;
  }();
  (void)once;
}

TEST(MultiDeviceSessionTest, CancellingARunReleasesEveryPartition) {
  RegisterBlockOp();
  Scope root = ops::NewRootScope();
  Output x = ops::Const(root.WithOpName("x").WithDevice("/device:cpu:0"), Tensor::Scalar<float>(1));
  Output y = ops::BuildOp(root.WithOpName("y").WithDevice("/device:cpu:0"),
                          "TestBlockUntilCancelled", {x}, {}, SourceLocation::Current());
  Output z = ops::Neg(root.WithOpName("z").WithDevice("/device:cpu:1"), y);  // Waits on a Recv.
  auto session = MakeSession(root, 2);
  for (int i = 0; i < 5; ++i) {
    absl::Notification entered;
    blocked = &entered;
    CancellationManager cm;
    RunOptions options;
    options.cancellation = &cm;
    absl::Status status;
    std::thread runner([&] {
      std::vector<Tensor> out;
      status = session->Run({}, {z}, &out, {}, options);
    });
    entered.WaitForNotification();
    cm.StartCancel(absl::CancelledError("user pressed stop"));
    runner.join();
    EXPECT_TRUE(StatusHas(status, absl::StatusCode::kCancelled, "user pressed stop")) << status;
  }
  // Already cancelled before the run starts.
  CancellationManager cm;
  cm.StartCancel(absl::CancelledError("too late"));
  RunOptions options;
  options.cancellation = &cm;
  std::vector<Tensor> out;
  EXPECT_TRUE(StatusHas(session->Run({}, {z}, &out, {}, options), absl::StatusCode::kCancelled,
                        "too late"));
}

TEST(MultiDeviceSessionTest, ConcurrentRunsKeepTheirStepsApart) {
  Scope root = ops::NewRootScope();
  Output x = ops::Placeholder(root.WithOpName("x").WithDevice("/device:cpu:0"), DType::kFloat32);
  Output a = ops::Mul(root.WithOpName("a").WithDevice("/device:cpu:1"), x, 2.0f);
  Output b = ops::Add(root.WithOpName("b").WithDevice("/device:cpu:2"), a, x);
  Output c = ops::Neg(root.WithOpName("c").WithDevice("/device:cpu:0"), b);
  auto session = MakeSession(root, 3);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        float v = static_cast<float>(t * 1000 + i);
        std::vector<Tensor> out;
        absl::Status s = session->Run({{x, Tensor::Scalar<float>(v)}}, {c}, &out);
        if (!s.ok() || out[0].scalar<float>() != -3 * v) wrong.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(MultiDeviceSessionTest, LongChainsOfCheapHopsAcrossDevicesRun) {
  // Every op on the other device from its input: thousands of transfers whose consumers are
  // cheap, delivered on the sending thread up to a bounded nesting depth.
  Scope root = ops::NewRootScope();
  Output x = ops::Placeholder(root.WithOpName("x"), DType::kFloat32);
  Output h = x;
  const int hops = 3000;
  for (int i = 0; i < hops; ++i) h = ops::Neg(root.WithDevice(Cpu(i % 2)), h);
  auto session = MakeSession(root, 2);
  std::vector<Tensor> out;
  ASSERT_TRUE(session->Run({{x, Tensor::FromVector<float>({1, 2})}}, {h}, &out).ok());
  EXPECT_TRUE(TensorNear(out[0], Tensor::FromVector<float>({1, 2})));  // An even number of Negs.
}

TEST(MultiDeviceSessionTest, ExpensiveBranchesOnEveryDeviceMatchOneDevice) {
  // MatMuls of 64x64 are expensive enough to continue on their own devices' threads.
  auto build = [](const Scope& root, int n, Output* x, Output* y) {
    *x = ops::Placeholder(root.WithOpName("x").WithDevice(n > 1 ? Cpu(0) : ""), DType::kFloat32,
                          TensorShape({64, 64}));
    std::vector<Output> outs;
    for (int b = 0; b < 4; ++b) {
      Scope s = root.WithDevice(n > 1 ? Cpu(b % n) : "");
      Output h = *x;
      for (int l = 0; l < 3; ++l) {
        h = ops::Tanh(s, ops::MatMul(s, h, RandomTensor(TensorShape({64, 64}), 100 * b + l, 0.2f)));
      }
      outs.push_back(h);
    }
    *y = ops::Add(root, ops::Add(root, outs[0], outs[1]), ops::Add(root, outs[2], outs[3]));
  };
  Tensor xv = RandomTensor(TensorShape({64, 64}), 9);
  std::vector<Tensor> expected;
  {
    Scope root = ops::NewRootScope();
    Output x, y;
    build(root, 1, &x, &y);
    ASSERT_TRUE(MakeSession(root, 1)->Run({{x, xv}}, {y}, &expected).ok());
  }
  for (int n : {2, 4}) {
    Scope root = ops::NewRootScope();
    Output x, y;
    build(root, n, &x, &y);
    auto session = MakeSession(root, n);
    for (int rep = 0; rep < 5; ++rep) {
      std::vector<Tensor> out;
      ASSERT_TRUE(session->Run({{x, xv}}, {y}, &out).ok());
      EXPECT_TRUE(TensorNear(out[0], expected[0], 1e-5, 1e-5)) << n;
    }
  }
}

// Training with hand-built gradients (a tanh MLP with softmax cross-entropy and plain SGD): the
// loss after every step is the same on one, two and four devices, with the variables spread
// over the devices by request or by the automatic placer.
std::vector<float> TrainByHand(int num_devices, bool spread_by_request, int steps) {
  Scope root = ops::NewRootScope();
  const int batch = 32, in = 8, hidden = 16, classes = 4;
  auto dev = [&](int i) { return spread_by_request ? Cpu(i % num_devices) : std::string(); };
  Tensor xv = RandomTensor(TensorShape({batch, in}), 5);
  Tensor labels(DType::kFloat32, TensorShape({batch, classes}));
  labels.flat<float>().setZero();
  for (int i = 0; i < batch; ++i) {
    // The class is the sign pattern of two inputs: learnable by the MLP.
    int c = (xv.matrix<float>()(i, 0) > 0) * 2 + (xv.matrix<float>()(i, 1) > 0);
    labels.matrix<float>()(i, c) = 1;
  }
  Output x = ops::Const(root.WithOpName("x"), xv);
  Output y = ops::Const(root.WithOpName("y"), labels);
  struct Param {
    Output var, init;
  };
  auto param = [&](const std::string& name, TensorShape shape, uint32_t seed, int device) {
    Output v = ops::Variable(root.WithOpName(name).WithDevice(dev(device)), shape, DType::kFloat32);
    Output init = ops::Assign(root.WithOpName(name + "/init"), v, RandomTensor(shape, seed, 0.5f));
    return Param{v, init};
  };
  Param w1 = param("w1", TensorShape({in, hidden}), 1, 0);
  Param b1 = param("b1", TensorShape({hidden}), 2, 1);
  Param w2 = param("w2", TensorShape({hidden, classes}), 3, 2);
  Param b2 = param("b2", TensorShape({classes}), 4, 3);
  Output h = ops::Tanh(root, Dense(root, x, w1.var, b1.var));
  Output logits = Dense(root, h, w2.var, b2.var);
  std::vector<Output> xent = ops::SoftmaxCrossEntropyWithLogits(root, logits, y);
  ops::ReduceMean(root.WithOpName("loss"), xent[0], {int64_t{0}});
  // Backward by hand.
  Scope g = root.NewSubScope("grad");
  Output dlogits = ops::Mul(g, xent[1], 1.0f / batch);
  Output dw2 = ops::MatMul(g, h, dlogits, /*transpose_a=*/true);
  Output db2 = ops::ReduceSum(g, dlogits, {int64_t{0}});
  Output dh = ops::MatMul(g, dlogits, w2.var, false, /*transpose_b=*/true);
  Output dpre = ops::Mul(g, dh, ops::Sub(g, 1.0f, ops::Square(g, h)));
  Output dw1 = ops::MatMul(g, x, dpre, /*transpose_a=*/true);
  Output db1 = ops::ReduceSum(g, dpre, {int64_t{0}});
  const float lr = 0.5f;
  std::vector<Output> updates = {ops::AssignSub(root, w1.var, ops::Mul(g, dw1, lr)),
                                 ops::AssignSub(root, b1.var, ops::Mul(g, db1, lr)),
                                 ops::AssignSub(root, w2.var, ops::Mul(g, dw2, lr)),
                                 ops::AssignSub(root, b2.var, ops::Mul(g, db2, lr))};
  const Node* train = ops::NoOp(root.WithOpName("train").WithControlDependencies(updates));
  const Node* init = ops::NoOp(root.WithOpName("init").WithControlDependencies(
      std::vector<Output>{w1.init, b1.init, w2.init, b2.init}));
  // Free transfers make the automatic placer spread this tiny model (see the training test).
  PlacerOptions placement;
  placement.cost.transfer_latency_ns = 0;
  placement.cost.transfer_bytes_per_ns = 1e9;
  auto session = MakeSession(root, num_devices, placement);
  if (session == nullptr) return {};
  if (num_devices > 1) {
    const std::vector<int>& d = session->placement()->device_of;
    EXPECT_GT(std::set<int>(d.begin(), d.end()).size(), 1u);
  }
  std::vector<Tensor> out;
  EXPECT_TRUE(session->Run({}, {}, {init->name()}, &out).ok());
  std::vector<float> losses;
  for (int step = 0; step < steps; ++step) {
    absl::Status s = session->Run({}, {"loss"}, {train->name()}, &out);
    EXPECT_TRUE(s.ok()) << s;
    if (!s.ok()) return {};
    losses.push_back(out[0].scalar<float>());
  }
  if (num_devices > 1) {
    // Each variable's nodes and updates share its device, and the value lives only there.
    const Placement& p = *session->placement();
    const std::pair<std::string, int> params[] = {{"w1", 0}, {"b1", 1}, {"w2", 2}, {"b2", 3}};
    for (const auto& [name, requested] : params) {
      const Node* v = session->graph().FindNode(name);
      int d = p.DeviceIndexOf(v);
      if (spread_by_request) {
        EXPECT_EQ(p.DeviceOf(v), dev(requested));
      }
      const Node* handle = session->graph().FindNode(name + "_ref/Variable");
      for (const OutEdge& e : handle->out_edges()) {
        EXPECT_EQ(p.DeviceIndexOf(e.dst), d) << e.dst->name();
      }
      for (int i = 0; i < num_devices; ++i) {
        EXPECT_EQ(session->device(i)->resources()->LookupVariable(name) != nullptr, i == d) << name;
      }
    }
  }
  return losses;
}

TEST(MultiDeviceSessionTest, HandWrittenTrainingReachesTheSameLossOnOneTwoAndFourDevices) {
  const int steps = 60;
  std::vector<float> one = TrainByHand(1, false, steps);
  ASSERT_EQ(one.size(), static_cast<size_t>(steps));
  EXPECT_LT(one.back(), 0.5f * one.front()) << "the model should learn";
  for (int n : {2, 4}) {
    for (bool by_request : {true, false}) {
      std::vector<float> losses = TrainByHand(n, by_request, steps);
      ASSERT_EQ(losses.size(), one.size());
      for (int i = 0; i < steps; ++i) {
        EXPECT_NEAR(losses[i], one[i], 1e-5 * (1 + std::fabs(one[i])))
            << n << " devices, step " << i << (by_request ? " (requested)" : " (automatic)");
      }
    }
  }
}

}  // namespace
}  // namespace sluice
