// The model of the optimizer tests (a tanh MLP on the XOR-of-signs problem, gradients from
// AddGradients through Optimizer::Minimize, variables from VariableWithInit) trained in a
// Session over one, two and four virtual devices: the loss after every step is the same as on
// one device, whether the placer spreads the graph by itself or the layers request devices, and
// every variable's value lives on exactly one device.
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "ops/all_ops.h"
#include "ops/optimizers.h"
#include "ops/variables.h"
#include "runtime/session/session.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

using test::Dense;
using test::MakeData;

constexpr int64_t kExamples = 256, kFeatures = 2, kHidden = 16, kClasses = 2;

enum class Spread { kAutomatic, kPerVariable };

struct TrainingRun {
  std::vector<float> losses;
  std::vector<std::string> variable_devices;  // Of w1, b1, w2, b2.
  int devices_used = 0;
};

// Trains for `steps` full-batch steps on `num_devices` devices.
TrainingRun Train(const std::function<std::unique_ptr<ops::Optimizer>()>& make_optimizer,
                  int num_devices, Spread spread, int steps) {
  Scope s = ops::NewRootScope();
  auto on = [&](int i) {
    return spread == Spread::kPerVariable ? absl::StrCat("/device:cpu:", i % num_devices)
                                          : std::string();
  };
  Output x = ops::Placeholder(s.WithOpName("x"), DType::kFloat32, TensorShape({-1, kFeatures}));
  Output y = ops::Placeholder(s.WithOpName("y"), DType::kInt64, TensorShape({-1}));
  Scope l1 = s.WithDevice(on(0)), l1b = s.WithDevice(on(1));
  Scope l2 = s.WithDevice(on(2)), l2b = s.WithDevice(on(3));
  Output w1 = ops::VariableWithInit(
      l1.WithOpName("w1"), ops::GlorotUniform(l1, {kFeatures, kHidden}, DType::kFloat32, 1));
  Output b1 =
      ops::VariableWithInit(l1b.WithOpName("b1"), ops::Zeros(l1b, {kHidden}, DType::kFloat32));
  Output w2 = ops::VariableWithInit(
      l2.WithOpName("w2"), ops::GlorotUniform(l2, {kHidden, kClasses}, DType::kFloat32, 2));
  Output b2 =
      ops::VariableWithInit(l2b.WithOpName("b2"), ops::Zeros(l2b, {kClasses}, DType::kFloat32));
  Output h = ops::Tanh(l1, Dense(l1, x, w1, b1));
  Output logits = Dense(l2, h, w2, b2);
  Output loss = ops::ReduceMean(s.WithOpName("loss"),
                                ops::SparseSoftmaxCrossEntropyWithLogits(l2, logits, y)[0], {0});
  std::unique_ptr<ops::Optimizer> opt = make_optimizer();
  absl::StatusOr<const Node*> train = opt->Minimize(s.WithOpName("train"), loss, {w1, b1, w2, b2});
  EXPECT_TRUE(train.ok()) << train.status();
  ops::GlobalVariablesInitializer(s.WithOpName("init"));
  absl::StatusOr<std::shared_ptr<const Graph>> graph = s.Finalize();
  EXPECT_TRUE(graph.ok()) << graph.status();
  if (!graph.ok() || !train.ok()) return {};
  SessionOptions options;
  options.num_devices = num_devices;
  options.device.inter_op_threads = 2;
  options.device.intra_op_threads = 1;
  // This model is tiny: with realistic transfer costs the placer rightly keeps it on one device.
  // Free transfers make it spread the independent work, which is what this test exercises.
  options.placement.cost.transfer_latency_ns = 0;
  options.placement.cost.transfer_bytes_per_ns = 1e9;
  absl::StatusOr<std::unique_ptr<Session>> session = Session::Create(*graph, options);
  EXPECT_TRUE(session.ok()) << session.status();
  if (!session.ok()) return {};
  TrainingRun run;
  absl::Status st = (*session)->Run({}, {}, {"init"}, nullptr);
  EXPECT_TRUE(st.ok()) << st;
  Tensor xv, yv;
  MakeData(&xv, &yv, kExamples);
  std::vector<Tensor> out;
  for (int i = 0; i < steps; ++i) {
    st = (*session)->Run({{"x", xv}, {"y", yv}}, {"loss"}, {"train"}, &out);
    EXPECT_TRUE(st.ok()) << st;
    if (!st.ok()) return run;
    run.losses.push_back(out[0].scalar<float>());
  }
  // Every variable (model and optimizer slots) has its value on exactly one device: the one its
  // nodes were placed on.
  for (const Node* n : (*graph)->nodes()) {
    if (n->op() != "Variable") continue;
    std::string name = n->GetAttr<std::string>("shared_name").value_or("");
    if (name.empty()) name = n->name();
    int holders = 0;
    for (int d = 0; d < num_devices; ++d) {
      if ((*session)->device(d)->resources()->LookupVariable(name) != nullptr) {
        ++holders;
        if (num_devices > 1) {
          EXPECT_EQ((*session)->placement()->DeviceIndexOf(n), d) << n->name();
        }
      }
    }
    EXPECT_EQ(holders, 1) << name;
  }
  if (num_devices > 1) {
    const std::vector<int>& device_of = (*session)->placement()->device_of;
    run.devices_used = static_cast<int>(std::set<int>(device_of.begin(), device_of.end()).size());
    for (const char* v : {"w1", "b1", "w2", "b2"}) {
      run.variable_devices.push_back((*session)->placement()->DeviceOf((*graph)->FindNode(v)));
    }
  }
  return run;
}

struct Case {
  const char* name;
  std::function<std::unique_ptr<ops::Optimizer>()> make;
  int steps;
  float target;  // Loss to beat after `steps` (from the optimizer tests' stated targets).
};

TEST(MultiDeviceTrainingTest, SameLossOnOneTwoAndFourDevices) {
  const Case cases[] = {
      {"GradientDescent", [] { return std::make_unique<ops::GradientDescentOptimizer>(0.5); }, 600,
       0.1f},
      {"Momentum", [] { return std::make_unique<ops::MomentumOptimizer>(0.1, 0.9); }, 300, 0.1f},
      {"Adam", [] { return std::make_unique<ops::AdamOptimizer>(0.03); }, 300, 0.05f},
  };
  for (const Case& c : cases) {
    TrainingRun one = Train(c.make, 1, Spread::kAutomatic, c.steps);
    ASSERT_EQ(one.losses.size(), static_cast<size_t>(c.steps)) << c.name;
    EXPECT_LT(one.losses.back(), c.target) << c.name;
    for (int n : {2, 4}) {
      for (Spread spread : {Spread::kAutomatic, Spread::kPerVariable}) {
        TrainingRun many = Train(c.make, n, spread, c.steps);
        ASSERT_EQ(many.losses.size(), one.losses.size()) << c.name << " on " << n;
        for (int i = 0; i < c.steps; ++i) {
          ASSERT_NEAR(many.losses[i], one.losses[i], 1e-5 * (1 + std::fabs(one.losses[i])))
              << c.name << " on " << n << " devices ("
              << (spread == Spread::kAutomatic ? "automatic" : "per variable") << "), step " << i;
        }
        EXPECT_GT(many.devices_used, 1) << c.name << " on " << n;
        if (spread == Spread::kPerVariable) {
          // The requests were honoured: the four variables sit on min(4, n) devices.
          for (int v = 0; v < 4; ++v) {
            EXPECT_EQ(many.variable_devices[v],
                      absl::StrCat("/job:localhost/task:0/device:cpu:", v % n));
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace sluice
