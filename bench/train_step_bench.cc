// One training step of an MLP (784-1024-1024-10, ReLU, batch 64, softmax cross-entropy, plain
// SGD, float32) through a Session: forward, backward (AddGradients) and the in-place updates,
// fetching the loss. The peer is the same step in PyTorch eager (bench/torch_mlp_step.py);
// bench/train_step.sh runs both alternately with equal thread counts and prints the ratio.
//
//   bazel run -c opt //bench:train_step_bench -- --benchmark_filter=BM_TrainStep/1
// The argument is the thread count: the device's inter-op arena and intra-op pool both get it.
#include <memory>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "graph/scope.h"
#include "ops/all_ops.h"
#include "ops/optimizers.h"
#include "ops/variables.h"
#include "runtime/session/session.h"

namespace sluice {
namespace {

constexpr int64_t kBatch = 64, kIn = 784, kHidden = 1024, kClasses = 10;

Output Dense(const Scope& s, Output x, int64_t in, int64_t out, bool relu, int64_t seed,
             std::vector<Output>* vars) {
  Output w = ops::VariableWithInit(s.WithOpName("w"),
                                   ops::GlorotUniform(s, {in, out}, DType::kFloat32, seed));
  Output b = ops::VariableWithInit(s.WithOpName("b"), ops::Zeros(s, {out}, DType::kFloat32));
  vars->push_back(w);
  vars->push_back(b);
  Output y = ops::Add(s, ops::MatMul(s, x, w), b);
  return relu ? ops::Relu(s, y) : y;
}

void BM_TrainStep(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  Scope root = ops::NewRootScope();
  std::vector<Output> vars;
  Output x = ops::Placeholder(root.WithOpName("x"), DType::kFloat32, TensorShape({-1, kIn}));
  Output y = ops::Placeholder(root.WithOpName("y"), DType::kInt64, TensorShape({-1}));
  Output h1 = Dense(root.NewSubScope("fc1"), x, kIn, kHidden, true, 1, &vars);
  Output h2 = Dense(root.NewSubScope("fc2"), h1, kHidden, kHidden, true, 2, &vars);
  Output logits = Dense(root.NewSubScope("fc3"), h2, kHidden, kClasses, false, 3, &vars);
  ops::ReduceMean(root.WithOpName("loss"),
                  ops::SparseSoftmaxCrossEntropyWithLogits(root, logits, y)[0], {0});
  ops::GradientDescentOptimizer sgd(0.01);
  absl::StatusOr<const Node*> train =
      sgd.Minimize(root.WithOpName("train"), Output(root.graph()->FindNode("loss"), 0), vars);
  ops::GlobalVariablesInitializer(root.WithOpName("init"));
  auto graph = root.Finalize();
  if (!train.ok() || !graph.ok()) {
    state.SkipWithError(graph.ok() ? train.status().ToString().c_str()
                                   : graph.status().ToString().c_str());
    return;
  }
  SessionOptions options;
  options.device.inter_op_threads = threads;
  options.device.intra_op_threads = threads;
  auto session = *Session::Create(*graph, options);
  if (!session->Run({}, {}, {"init"}, nullptr).ok()) {
    state.SkipWithError("init failed");
    return;
  }
  // A fixed batch: inputs N(0, 1), labels uniform over the classes.
  std::mt19937 rng(42);
  std::normal_distribution<float> normal;
  Tensor xb(DType::kFloat32, TensorShape({kBatch, kIn}));
  Tensor yb(DType::kInt64, TensorShape({kBatch}));
  for (int64_t i = 0; i < xb.num_elements(); ++i) xb.data<float>()[i] = normal(rng);
  for (int64_t i = 0; i < kBatch; ++i)
    yb.data<int64_t>()[i] = static_cast<int64_t>(rng() % kClasses);
  const std::vector<std::pair<std::string, Tensor>> feeds = {{"x", xb}, {"y", yb}};
  std::vector<Tensor> out;
  // Warm up (allocator, thread pools) and check that training works: the loss must fall.
  float first = 0, last = 0;
  for (int i = 0; i < 5; ++i) {
    absl::Status s = session->Run(feeds, {"loss"}, {"train"}, &out);
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      return;
    }
    (i == 0 ? first : last) = out[0].scalar<float>();
  }
  if (!(last < first)) {
    state.SkipWithError("the loss did not decrease during warm-up");
    return;
  }
  for (auto _ : state) {
    absl::Status s = session->Run(feeds, {"loss"}, {"train"}, &out);
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      return;
    }
  }
  state.counters["steps_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["loss"] = out[0].scalar<float>();
}
BENCHMARK(BM_TrainStep)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace sluice

BENCHMARK_MAIN();
