// BuildBsp on virtual devices of one Session: two replicas, each on half the batch, take the
// steps of one model on the whole batch (the mean loss of every step, and the variables after),
// with replicas' own variables (all-reduced gradients, one bucket or one per gradient, `sync`
// making differently initialised replicas equal first) and with shared variables on a third
// device (the parameter-server form).
#include "ops/strategies.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "ops/all_ops.h"
#include "ops/variables.h"
#include "runtime/session/session.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

constexpr int64_t kExamples = 256, kHidden = 16, kSteps = 20;

struct Params {
  Output w1, b1, w2, b2;
};

Params MakeParams(const Scope& s, int seed) {
  return {ops::VariableWithInit(s.WithOpName("w1"),
                                ops::GlorotUniform(s, {2, kHidden}, DType::kFloat32, seed)),
          ops::VariableWithInit(s.WithOpName("b1"), ops::Zeros(s, {kHidden}, DType::kFloat32)),
          ops::VariableWithInit(s.WithOpName("w2"),
                                ops::GlorotUniform(s, {kHidden, 2}, DType::kFloat32, seed + 1)),
          ops::VariableWithInit(s.WithOpName("b2"), ops::Zeros(s, {2}, DType::kFloat32))};
}

Output Loss(const Scope& s, Output x, Output y, const Params& p) {
  Output logits = test::Dense(s, ops::Tanh(s, test::Dense(s, x, p.w1, p.b1)), p.w2, p.b2);
  return ops::ReduceMean(s, ops::SparseSoftmaxCrossEntropyWithLogits(s, logits, y)[0], {0});
}

struct Result {
  std::vector<float> losses;
  std::vector<Tensor> variables;  // w1, b1, w2, b2 (replica 0's).
};

Result Run(const std::shared_ptr<const Graph>& graph, int devices, const std::string& loss,
           const std::string& train, const std::vector<std::string>& setup,
           const std::vector<std::string>& variables) {
  SessionOptions options;
  options.num_devices = devices;
  options.device.inter_op_threads = 2;
  options.device.intra_op_threads = 1;
  auto session = Session::Create(graph, options);
  EXPECT_TRUE(session.ok()) << session.status();
  Result r;
  if (!session.ok()) return r;
  for (const std::string& target : setup) {
    absl::Status s = (*session)->Run({}, {}, {target}, nullptr);
    EXPECT_TRUE(s.ok()) << target << ": " << s;
  }
  Tensor x, y;
  test::MakeData(&x, &y, kExamples);
  std::vector<Tensor> out;
  for (int i = 0; i < kSteps; ++i) {
    absl::Status s = (*session)->Run({{"x", x}, {"y", y}}, {loss}, {train}, &out);
    EXPECT_TRUE(s.ok()) << s;
    if (!s.ok()) return r;
    r.losses.push_back(out[0].scalar<float>());
  }
  EXPECT_TRUE((*session)->Run({}, variables, {}, &r.variables).ok());
  return r;
}

Result Reference() {
  Scope s = ops::NewRootScope();
  Output x = ops::Placeholder(s.WithOpName("x"), DType::kFloat32, TensorShape({-1, 2}));
  Output y = ops::Placeholder(s.WithOpName("y"), DType::kInt64, TensorShape({-1}));
  Params p = MakeParams(s, 1);
  Output loss = ops::Identity(s.WithOpName("loss"), Loss(s, x, y, p));
  ops::MomentumOptimizer opt(0.2, 0.9);
  EXPECT_TRUE(opt.Minimize(s.WithOpName("train"), loss, {p.w1, p.b1, p.w2, p.b2}).ok());
  ops::GlobalVariablesInitializer(s.WithOpName("init"));
  auto graph = s.Finalize();
  EXPECT_TRUE(graph.ok()) << graph.status();
  return Run(*graph, 1, "loss", "train", {"init"}, {"w1", "b1", "w2", "b2"});
}

// Replica i reads rows [128 i, 128 (i + 1)). `shared`: the parameters live once on cpu:2.
Result Bsp(bool shared, int64_t bucket_bytes, std::vector<std::vector<int>>* buckets) {
  Scope s = ops::NewRootScope();
  Output x = ops::Placeholder(s.WithOpName("x"), DType::kFloat32, TensorShape({-1, 2}));
  Output y = ops::Placeholder(s.WithOpName("y"), DType::kInt64, TensorShape({-1}));
  const std::vector<std::string> devices = {"/device:cpu:0", "/device:cpu:1"};
  Params on_ps;
  if (shared) on_ps = MakeParams(s.WithDevice("/device:cpu:2"), 1);
  auto model = [&](const Scope& rs, int i) -> absl::StatusOr<ops::Replica> {
    const int64_t half = kExamples / 2;
    Output xi = ops::Slice(rs, x, Tensor::FromVector<int64_t>({half * i, 0}),
                           Tensor::FromVector<int64_t>({half, 2}));
    Output yi = ops::Slice(rs, y, Tensor::FromVector<int64_t>({half * i}),
                           Tensor::FromVector<int64_t>({half}));
    // Own parameters start differently (seed 1 + 10 i): `sync` must make them equal.
    Params p = shared ? on_ps : MakeParams(rs, 1 + 10 * i);
    return ops::Replica{Loss(rs, xi, yi, p), {p.w1, p.b1, p.w2, p.b2}};
  };
  ops::MomentumOptimizer opt(0.2, 0.9);
  absl::StatusOr<ops::BspTraining> bsp =
      ops::BuildBsp(s, devices, model, &opt, {.bucket_bytes = bucket_bytes});
  EXPECT_TRUE(bsp.ok()) << bsp.status();
  if (!bsp.ok()) return {};
  *buckets = bsp->buckets;
  ops::Identity(s.WithOpName("loss"), bsp->mean_loss);
  ops::GlobalVariablesInitializer(s.WithOpName("init"));
  auto graph = s.Finalize();
  EXPECT_TRUE(graph.ok()) << graph.status();
  std::vector<std::string> vars;
  for (const Output& v : bsp->replicas[0].variables) vars.push_back(v.node()->name());
  return Run(*graph, shared ? 3 : 2, "loss", bsp->train->name(), {"init", bsp->sync->name()}, vars);
}

void ExpectSameTraining(const Result& got, const Result& want, const char* what) {
  ASSERT_EQ(got.losses.size(), want.losses.size()) << what;
  for (size_t i = 0; i < want.losses.size(); ++i) {
    EXPECT_NEAR(got.losses[i], want.losses[i], 1e-5 * (1 + std::fabs(want.losses[i])))
        << what << ", step " << i;
  }
  ASSERT_EQ(got.variables.size(), 4u) << what;
  for (int k = 0; k < 4; ++k) {
    EXPECT_TRUE(test::TensorNear(got.variables[k], want.variables[k], 1e-5, 1e-4))
        << what << ", variable " << k;
  }
}

TEST(StrategiesTest, BspOnTwoReplicasEqualsOneModelOnTheWholeBatch) {
  const Result want = Reference();
  ASSERT_EQ(want.losses.size(), static_cast<size_t>(kSteps));
  EXPECT_LT(want.losses.back(), want.losses.front());
  std::vector<std::vector<int>> buckets;
  ExpectSameTraining(Bsp(false, 4 << 20, &buckets), want, "one bucket");
  // Production order b2, w2, b1, w1 (8, 128, 64 and 128 bytes): all in one bucket.
  EXPECT_EQ(buckets, (std::vector<std::vector<int>>{{0, 1, 2, 3}}));
  ExpectSameTraining(Bsp(false, 100, &buckets), want, "buckets of 100 bytes");
  EXPECT_EQ(buckets, (std::vector<std::vector<int>>{{0}, {1}, {2}, {3}}));
  ExpectSameTraining(Bsp(true, 4 << 20, &buckets), want, "shared parameters");
  EXPECT_TRUE(buckets.empty());
}

TEST(StrategiesTest, ReplicasMustAgreeOnTheirVariables) {
  Scope s = ops::NewRootScope();
  auto model = [&](const Scope& rs, int i) -> absl::StatusOr<ops::Replica> {
    Output w = ops::VariableWithInit(rs.WithOpName("w"), ops::Zeros(rs, {2}, DType::kFloat32));
    std::vector<Output> vars = {w};
    if (i == 1) vars.push_back(w);
    return ops::Replica{ops::ReduceSum(rs, w, {0}), vars};
  };
  ops::GradientDescentOptimizer sgd(0.1);
  EXPECT_TRUE(test::StatusHas(
      ops::BuildBsp(s, {"/device:cpu:0", "/device:cpu:1"}, model, &sgd).status(),
      absl::StatusCode::kInvalidArgument, "replica 1 has 2 variables, replica 0 1"));
}

// The local-step strategies on a linear least-squares model (float64), against their equations
// written out here: replica i fits w (2 x 1, from w0) to its own 4 rows, loss mean((X_i w -
// y_i)^2), gradient 2 X_i^T (X_i w - y_i) / 4.
using Vec = std::array<double, 2>;

struct Shard {
  std::vector<double> x, y;  // x: 4 rows of 2, row-major; y: 4.
};

Shard MakeShard(int i) { return {test::Values(8, 10 + i, -1, 1), test::Values(4, 20 + i, -1, 1)}; }

Vec Gradient(const Shard& d, const Vec& w) {
  Vec g{0, 0};
  for (int r = 0; r < 4; ++r) {
    const double e = d.x[2 * r] * w[0] + d.x[2 * r + 1] * w[1] - d.y[r];
    g[0] += 2 * d.x[2 * r] * e / 4;
    g[1] += 2 * d.x[2 * r + 1] * e / 4;
  }
  return g;
}

const Vec kW0 = {0.5, -0.5};

ops::ReplicaModelFn LinearModel() {
  return [](const Scope& s, int i) -> absl::StatusOr<ops::Replica> {
    const Shard d = MakeShard(i);
    Tensor x(DType::kFloat64, TensorShape({4, 2})), y(DType::kFloat64, TensorShape({4, 1}));
    std::copy(d.x.begin(), d.x.end(), x.data<double>());
    std::copy(d.y.begin(), d.y.end(), y.data<double>());
    Output w = ops::VariableWithInit(s.WithOpName("w"),
                                     Tensor::FromVector<double>({kW0[0], kW0[1]}, {2, 1}));
    Output e = ops::Sub(s, ops::MatMul(s, ops::Const(s, x), w), ops::Const(s, y));
    return ops::Replica{ops::ReduceMean(s, ops::Square(s, e), {0, 1}), {w}};
  };
}

const std::vector<std::string> kTwo = {"/device:cpu:0", "/device:cpu:1"};

std::unique_ptr<Session> Start(const Scope& s, int devices) {
  ops::GlobalVariablesInitializer(s.WithOpName("init"));
  auto graph = s.Finalize();
  EXPECT_TRUE(graph.ok()) << graph.status();
  SessionOptions options;
  options.num_devices = devices;
  auto session = Session::Create(*graph, options);
  EXPECT_TRUE(session.ok()) << session.status();
  EXPECT_TRUE((*session)->Run({}, {}, {"init"}, nullptr).ok());
  return *std::move(session);
}

Vec Fetch(Session* session, const Output& v) {
  std::vector<Tensor> out;
  EXPECT_TRUE(session->Run({}, {v}, &out).ok());
  return {out[0].data<double>()[0], out[0].data<double>()[1]};
}

void ExpectNear(const Vec& got, const Vec& want, double tol, const std::string& what) {
  EXPECT_NEAR(got[0], want[0], tol) << what;
  EXPECT_NEAR(got[1], want[1], tol) << what;
}

TEST(StrategiesTest, ModelAveragingMatchesItsEquations) {
  Scope s = ops::NewRootScope();
  ops::GradientDescentOptimizer sgd(0.1);
  auto t = ops::BuildModelAveraging(s, kTwo, LinearModel(), &sgd);
  ASSERT_TRUE(t.ok()) << t.status();
  auto session = Start(s, 2);
  std::vector<Vec> x = {kW0, kW0};
  for (int step = 1; step <= 6; ++step) {
    std::vector<Tensor> count;
    ASSERT_TRUE(session->Run({}, {t->count}, &count, {Output(t->train, 0)}).ok());
    EXPECT_EQ(count[0].scalar<int64_t>(), step);
    for (int i = 0; i < 2; ++i) {
      const Vec g = Gradient(MakeShard(i), x[i]);
      x[i] = {x[i][0] - 0.1 * g[0], x[i][1] - 0.1 * g[1]};
    }
    if (step % 2 == 0) {  // K = 2
      ASSERT_TRUE(session->Run({}, {}, {t->communicate->name()}, nullptr).ok());
      const Vec mean = {(x[0][0] + x[1][0]) / 2, (x[0][1] + x[1][1]) / 2};
      x = {mean, mean};
    }
    for (int i = 0; i < 2; ++i) {
      ExpectNear(Fetch(session.get(), t->replicas[i].variables[0]), x[i], 1e-12,
                 absl::StrCat("step ", step, " replica ", i));
    }
  }
}

TEST(StrategiesTest, ElasticAveragingMatchesItsEquations) {
  Scope s = ops::NewRootScope();
  ops::GradientDescentOptimizer sgd(0.1);
  const double alpha = 0.2;
  auto t = ops::BuildElasticAveraging(s, kTwo, LinearModel(), &sgd, alpha);
  ASSERT_TRUE(t.ok()) << t.status();
  auto session = Start(s, 2);
  std::vector<Vec> x = {kW0, kW0};
  Vec c = kW0;
  for (int step = 1; step <= 5; ++step) {
    ASSERT_TRUE(session->Run({}, {}, {t->communicate->name()}, nullptr).ok());
    Vec sum{0, 0};
    for (int i = 0; i < 2; ++i) {  // Every term before the step.
      const Vec g = Gradient(MakeShard(i), x[i]);
      const Vec d = {x[i][0] - c[0], x[i][1] - c[1]};
      sum = {sum[0] + d[0], sum[1] + d[1]};
      x[i] = {x[i][0] - 0.1 * g[0] - alpha * d[0], x[i][1] - 0.1 * g[1] - alpha * d[1]};
    }
    c = {c[0] + alpha * sum[0], c[1] + alpha * sum[1]};
    for (int i = 0; i < 2; ++i) {
      ExpectNear(Fetch(session.get(), t->replicas[i].variables[0]), x[i], 1e-12,
                 absl::StrCat("x, step ", step, " replica ", i));
      ExpectNear(Fetch(session.get(), t->centers[i][0]), c, 1e-12,
                 absl::StrCat("center, step ", step, " replica ", i));
    }
  }
}

TEST(StrategiesTest, AdmmReachesTheLeastSquaresOptimumOfAllTheData) {
  Scope s = ops::NewRootScope();
  ops::GradientDescentOptimizer sgd(0.1);
  auto t = ops::BuildAdmm(s, kTwo, LinearModel(), &sgd, /*rho=*/1.0);
  ASSERT_TRUE(t.ok()) << t.status();
  auto session = Start(s, 2);
  std::vector<Tensor> residual;
  for (int round = 0; round < 60; ++round) {
    for (int k = 0; k < 25; ++k) ASSERT_TRUE(session->Run({}, {}, {"train"}, nullptr).ok());
    ASSERT_TRUE(
        session->Run({}, {t->primal_residual}, &residual, {Output(t->communicate, 0)}).ok());
  }
  // The optimum of the summed losses (equal shards): the normal equations of all 8 rows.
  double a00 = 0, a01 = 0, a11 = 0, b0 = 0, b1 = 0;
  for (int i = 0; i < 2; ++i) {
    const Shard d = MakeShard(i);
    for (int r = 0; r < 4; ++r) {
      const double p = d.x[2 * r], q = d.x[2 * r + 1];
      a00 += p * p, a01 += p * q, a11 += q * q, b0 += p * d.y[r], b1 += q * d.y[r];
    }
  }
  const double det = a00 * a11 - a01 * a01;
  const Vec optimum = {(a11 * b0 - a01 * b1) / det, (a00 * b1 - a01 * b0) / det};
  EXPECT_LT(residual[0].scalar<double>(), 1e-8);
  ExpectNear(Fetch(session.get(), t->centers[0][0]), optimum, 1e-4, "z");
  for (int i = 0; i < 2; ++i) {
    ExpectNear(Fetch(session.get(), t->replicas[i].variables[0]), optimum, 1e-4, "x_i");
  }
}

TEST(StrategiesTest, LocalStrategiesNeedACopyPerReplica) {
  Scope s = ops::NewRootScope();
  Output shared = ops::VariableWithInit(s.WithOpName("shared"),
                                        ops::Zeros(s, TensorShape({2}), DType::kFloat32));
  auto model = [&](const Scope& rs, int) -> absl::StatusOr<ops::Replica> {
    return ops::Replica{ops::ReduceSum(rs, shared, {0}), {shared}};
  };
  ops::GradientDescentOptimizer sgd(0.1);
  EXPECT_TRUE(test::StatusHas(ops::BuildModelAveraging(s, kTwo, model, &sgd).status(),
                              absl::StatusCode::kInvalidArgument,
                              "replica 1 shares variable shared:0 with replica 0"));
}

}  // namespace
}  // namespace sluice
