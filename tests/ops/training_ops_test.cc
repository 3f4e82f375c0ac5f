// The optimizer update ops against the update rules computed here in double precision, plus
// copy-on-write, in-place updates and error paths.
#include "ops/training_ops.h"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "ops/all_ops.h"
#include "ops/op_builder.h"
#include "runtime/session/session.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

using test::StatusHas;
using test::TensorNear;

// One variable (and optional slot variables) of 3 float64 elements in a session.
struct Fixture {
  Scope s = ops::NewRootScope();
  std::unique_ptr<Session> session;

  Output Var(const std::string& name, std::vector<double> init, std::vector<Output>* inits) {
    Output v = ops::Variable(s.WithOpName(name), TensorShape({3}), DType::kFloat64);
    inits->push_back(ops::Assign(s, v, Tensor::FromVector<double>(init)));
    return v;
  }
  void Start(const std::vector<Output>& inits) {
    auto graph = s.Finalize();
    ASSERT_TRUE(graph.ok()) << graph.status();
    auto created = Session::Create(*graph);
    ASSERT_TRUE(created.ok());
    session = std::move(*created);
    ASSERT_TRUE(session->Run({}, {}, nullptr, inits).ok());
  }
  absl::Status Step(const Node* update) { return session->Run({}, {}, {update->name()}, nullptr); }
  Tensor Read(const std::string& name) {
    std::vector<Tensor> out;
    EXPECT_TRUE(session->Run({}, {name}, {}, &out).ok());
    return out.empty() ? Tensor() : out[0];
  }
};

const std::vector<double> kW0 = {1.0, -2.0, 0.5};
const std::vector<double> kGrad = {0.3, -0.1, 2.0};

TEST(TrainingOpsTest, GradientDescent) {
  Fixture f;
  std::vector<Output> inits;
  Output w = f.Var("w", kW0, &inits);
  const Node* step = ops::ApplyGradientDescent(f.s, w, 0.1, Tensor::FromVector<double>(kGrad));
  ASSERT_NE(step, nullptr) << f.s.status();
  EXPECT_EQ(step->num_outputs(), 0);
  f.Start(inits);
  std::vector<double> want = kW0;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(f.Step(step).ok());
    for (int k = 0; k < 3; ++k) want[k] -= 0.1 * kGrad[k];
  }
  EXPECT_TRUE(TensorNear(f.Read("w"), Tensor::FromVector<double>(want), 1e-12, 1e-12));
}

TEST(TrainingOpsTest, MomentumPlainAndNesterov) {
  for (bool nesterov : {false, true}) {
    Fixture f;
    std::vector<Output> inits;
    Output w = f.Var("w", kW0, &inits);
    Output acc = f.Var("acc", {0, 0, 0}, &inits);
    const Node* step =
        ops::ApplyMomentum(f.s, w, acc, 0.1, Tensor::FromVector<double>(kGrad), 0.9, nesterov);
    ASSERT_NE(step, nullptr) << f.s.status();
    f.Start(inits);
    std::vector<double> want = kW0, a = {0, 0, 0};
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(f.Step(step).ok());
      for (int k = 0; k < 3; ++k) {
        a[k] = 0.9 * a[k] + kGrad[k];
        want[k] -= nesterov ? 0.1 * kGrad[k] + 0.1 * 0.9 * a[k] : 0.1 * a[k];
      }
    }
    EXPECT_TRUE(TensorNear(f.Read("w"), Tensor::FromVector<double>(want), 1e-12, 1e-12))
        << "nesterov=" << nesterov;
    EXPECT_TRUE(TensorNear(f.Read("acc"), Tensor::FromVector<double>(a), 1e-12, 1e-12));
  }
}

TEST(TrainingOpsTest, Adagrad) {
  Fixture f;
  std::vector<Output> inits;
  Output w = f.Var("w", kW0, &inits);
  Output acc = f.Var("acc", {0.1, 0.1, 0.1}, &inits);
  const Node* step = ops::ApplyAdagrad(f.s, w, acc, 0.5, Tensor::FromVector<double>(kGrad));
  ASSERT_NE(step, nullptr) << f.s.status();
  f.Start(inits);
  std::vector<double> want = kW0, a = {0.1, 0.1, 0.1};
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(f.Step(step).ok());
    for (int k = 0; k < 3; ++k) {
      a[k] += kGrad[k] * kGrad[k];
      want[k] -= 0.5 * kGrad[k] / std::sqrt(a[k]);
    }
  }
  EXPECT_TRUE(TensorNear(f.Read("w"), Tensor::FromVector<double>(want), 1e-12, 1e-12));
  EXPECT_TRUE(TensorNear(f.Read("acc"), Tensor::FromVector<double>(a), 1e-12, 1e-12));
}

// Rows 2, 0, 2 with gradient rows kGrad: row 2 gets 0.3 + 2.0, row 0 gets -0.1, row 1 nothing.
TEST(TrainingOpsTest, SparseMomentumAndAdagradSumRepeatedRowsAndLeaveTheRest) {
  const Tensor indices = Tensor::FromVector<int64_t>({2, 0, 2});
  const std::vector<double> summed = {-0.1, 0.0, 2.3};
  for (bool adagrad : {false, true}) {
    Fixture f;
    std::vector<Output> inits;
    Output w = f.Var("w", kW0, &inits);
    Output acc = f.Var("acc", {0.1, 0.1, 0.1}, &inits);
    const Tensor grad = Tensor::FromVector<double>(kGrad);
    const Node* step = adagrad
                           ? ops::SparseApplyAdagrad(f.s, w, acc, 0.5, grad, indices)
                           : ops::SparseApplyMomentum(f.s, w, acc, 0.5, grad, indices, 0.9, false);
    ASSERT_NE(step, nullptr) << f.s.status();
    f.Start(inits);
    std::vector<double> want = kW0, a = {0.1, 0.1, 0.1};
    for (int i = 0; i < 2; ++i) {
      ASSERT_TRUE(f.Step(step).ok());
      for (int k : {0, 2}) {
        a[k] = adagrad ? a[k] + summed[k] * summed[k] : 0.9 * a[k] + summed[k];
        want[k] -= adagrad ? 0.5 * summed[k] / std::sqrt(a[k]) : 0.5 * a[k];
      }
    }
    EXPECT_TRUE(TensorNear(f.Read("w"), Tensor::FromVector<double>(want), 1e-12, 1e-12))
        << "adagrad=" << adagrad;
    EXPECT_TRUE(TensorNear(f.Read("acc"), Tensor::FromVector<double>(a), 1e-12, 1e-12));
  }
  Fixture f;
  std::vector<Output> inits;
  Output w = f.Var("w", kW0, &inits);
  Output acc = f.Var("acc", {0.1, 0.1, 0.1}, &inits);
  const Node* step = ops::SparseApplyAdagrad(f.s, w, acc, 0.5, Tensor::FromVector<double>({1.0}),
                                             Tensor::FromVector<int64_t>({3}));
  f.Start(inits);
  EXPECT_TRUE(StatusHas(f.Step(step), absl::StatusCode::kInvalidArgument,
                        "indices[0] = 3 is not a row of variable 'w' (3 rows)"));
  EXPECT_TRUE(TensorNear(f.Read("w"), Tensor::FromVector<double>(kW0), 0, 0));
}

TEST(TrainingOpsTest, Adam) {
  Fixture f;
  std::vector<Output> inits;
  Output w = f.Var("w", kW0, &inits);
  Output m = f.Var("m", {0, 0, 0}, &inits);
  Output v = f.Var("v", {0, 0, 0}, &inits);
  // Step 2 of Adam: beta powers 0.9^2 and 0.999^2.
  const double b1 = 0.9, b2 = 0.999, lr = 0.01, eps = 1e-8;
  const Node* step = ops::ApplyAdam(f.s, w, m, v, b1 * b1, b2 * b2, lr, b1, b2, eps,
                                    Tensor::FromVector<double>(kGrad));
  ASSERT_NE(step, nullptr) << f.s.status();
  f.Start(inits);
  ASSERT_TRUE(f.Step(step).ok());
  const double lr_t = lr * std::sqrt(1 - b2 * b2) / (1 - b1 * b1);
  std::vector<double> want = kW0, mw(3), vw(3);
  for (int k = 0; k < 3; ++k) {
    mw[k] = (1 - b1) * kGrad[k];
    vw[k] = (1 - b2) * kGrad[k] * kGrad[k];
    want[k] -= lr_t * mw[k] / (std::sqrt(vw[k]) + eps);
  }
  EXPECT_TRUE(TensorNear(f.Read("w"), Tensor::FromVector<double>(want), 1e-12, 1e-12));
  EXPECT_TRUE(TensorNear(f.Read("m"), Tensor::FromVector<double>(mw), 1e-12, 1e-12));
  EXPECT_TRUE(TensorNear(f.Read("v"), Tensor::FromVector<double>(vw), 1e-12, 1e-12));
}

// var -= alpha * op(a) op(b), on one thread and split over two (columns in blocks of 16).
TEST(TrainingOpsTest, GradientDescentMatMulAllTransposes) {
  const int64_t m = 64, k = 80, n = 96;
  for (int threads : {1, 2}) {
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        Scope s = ops::NewRootScope();
        Tensor w0(DType::kFloat64, TensorShape({m, n}));
        Tensor a(DType::kFloat64, ta ? TensorShape({k, m}) : TensorShape({m, k}));
        Tensor b(DType::kFloat64, tb ? TensorShape({n, k}) : TensorShape({k, n}));
        for (int64_t i = 0; i < w0.num_elements(); ++i) w0.data<double>()[i] = (i % 17) * 0.25;
        for (int64_t i = 0; i < a.num_elements(); ++i) a.data<double>()[i] = (i % 13) - 6.0;
        for (int64_t i = 0; i < b.num_elements(); ++i) b.data<double>()[i] = (i % 7) * 0.5 - 1;
        Output w = ops::Variable(s.WithOpName("w"), TensorShape({m, n}), DType::kFloat64);
        Output init = ops::Assign(s, w, w0);
        const Node* step = ops::ApplyGradientDescentMatMul(s, w, 0.125, a, b, ta, tb);
        ASSERT_NE(step, nullptr) << s.status();
        SessionOptions options;
        options.device.intra_op_threads = threads;
        auto session = *Session::Create(*s.Finalize(), options);
        ASSERT_TRUE(session->Run({}, {init}, nullptr).ok());
        ASSERT_TRUE(session->Run({}, {}, {step->name()}, nullptr).ok());
        std::vector<Tensor> out;
        ASSERT_TRUE(session->Run({}, {"w"}, {}, &out).ok());
        Tensor want = w0.DeepCopy();
        for (int64_t i = 0; i < m; ++i) {
          for (int64_t j = 0; j < n; ++j) {
            double dot = 0;
            for (int64_t p = 0; p < k; ++p) {
              const double av = ta ? a.matrix<double>()(p, i) : a.matrix<double>()(i, p);
              const double bv = tb ? b.matrix<double>()(j, p) : b.matrix<double>()(p, j);
              dot += av * bv;
            }
            want.matrix<double>()(i, j) -= 0.125 * dot;
          }
        }
        EXPECT_TRUE(TensorNear(out[0], want, 1e-9, 1e-12))
            << "threads=" << threads << " ta=" << ta << " tb=" << tb;
      }
    }
  }
}

TEST(TrainingOpsTest, GradientDescentMatMulShapeErrors) {
  Scope s = ops::NewRootScope();
  Output w = ops::Variable(s.WithOpName("w"), TensorShape({2, 3}), DType::kFloat32);
  Tensor a(DType::kFloat32, TensorShape({2, 4})), b(DType::kFloat32, TensorShape({4, 2}));
  EXPECT_EQ(ops::ApplyGradientDescentMatMul(s, w, 0.1f, a, b), nullptr);
  EXPECT_TRUE(StatusHas(s.status(), absl::StatusCode::kInvalidArgument,
                        "cannot update a variable of shape [2,3] by a product of shape [2,2]"));
}

TEST(TrainingOpsTest, Float32) {
  Scope s = ops::NewRootScope();
  Output w = ops::Variable(s.WithOpName("w"), TensorShape({2}), DType::kFloat32);
  Output init = ops::Assign(s, w, Tensor::FromVector<float>({1, 2}));
  const Node* step = ops::ApplyGradientDescent(s, w, 0.5f, Tensor::FromVector<float>({2, 2}));
  auto graph = s.Finalize();
  ASSERT_TRUE(graph.ok()) << graph.status();
  auto session = *Session::Create(*graph);
  ASSERT_TRUE(session->Run({}, {init}, nullptr).ok());
  ASSERT_TRUE(session->Run({}, {}, {step->name()}, nullptr).ok());
  std::vector<Tensor> out;
  ASSERT_TRUE(session->Run({}, {"w"}, {}, &out).ok());
  EXPECT_TRUE(TensorNear(out[0], Tensor::FromVector<float>({0, 1})));
}

TEST(TrainingOpsTest, UpdatesInPlaceUnlessAReaderHoldsTheValue) {
  Fixture f;
  std::vector<Output> inits;
  Output w = f.Var("w", kW0, &inits);
  const Node* step = ops::ApplyGradientDescent(f.s, w, 1.0, Tensor::FromVector<double>(kGrad));
  f.Start(inits);
  // The first update copies: Assign shared the buffer of its Const input.
  ASSERT_TRUE(f.Step(step).ok());
  std::shared_ptr<Variable> var = f.session->device()->resources()->LookupVariable("w");
  ASSERT_NE(var, nullptr);
  const void* before;
  {
    absl::MutexLock lock(&var->mu);
    before = var->value.raw_data();
  }
  ASSERT_TRUE(f.Step(step).ok());
  {
    absl::MutexLock lock(&var->mu);
    EXPECT_EQ(var->value.raw_data(), before);  // Nobody held it: updated in place.
  }
  // A fetched value pins the buffer: the next update copies and the fetched tensor keeps the
  // value it had.
  Tensor held = f.Read("w");
  Tensor snapshot = held.DeepCopy();
  ASSERT_TRUE(f.Step(step).ok());
  EXPECT_TRUE(test::TensorEq(held, snapshot));
  Tensor now = f.Read("w");
  EXPECT_FALSE(now.SharesBufferWith(held));
  EXPECT_TRUE(
      TensorNear(now, Tensor::FromVector<double>(
                          {kW0[0] - 3 * kGrad[0], kW0[1] - 3 * kGrad[1], kW0[2] - 3 * kGrad[2]})));
}

TEST(TrainingOpsTest, Errors) {
  {
    Fixture f;
    Output w = ops::Variable(f.s.WithOpName("w"), TensorShape({3}), DType::kFloat64);
    const Node* step = ops::ApplyGradientDescent(f.s, w, 0.1, Tensor::FromVector<double>(kGrad));
    f.Start({});
    EXPECT_TRUE(StatusHas(f.Step(step), absl::StatusCode::kFailedPrecondition,
                          "variable 'w' is not initialized"));
  }
  {
    // The shape error is caught while building.
    Scope s = ops::NewRootScope();
    Output w = ops::Variable(s.WithOpName("w"), TensorShape({3}), DType::kFloat64);
    ops::ApplyGradientDescent(s, w, 0.1, Tensor::FromVector<double>({1, 2}));
    EXPECT_TRUE(StatusHas(s.status(), absl::StatusCode::kInvalidArgument,
                          "cannot update a variable of shape [3] (input 0) with a gradient of "
                          "shape [2]"));
  }
  {
    // A variable declared with an unknown shape is checked when the update runs.
    Fixture f;
    Output w = ops::Variable(f.s.WithOpName("w"), TensorShape::UnknownRank(), DType::kFloat64);
    Output init = ops::Assign(f.s, w, Tensor::FromVector<double>({1, 2}));
    const Node* step = ops::ApplyGradientDescent(f.s, w, 0.1, Tensor::FromVector<double>(kGrad));
    f.Start({init});
    EXPECT_TRUE(StatusHas(f.Step(step), absl::StatusCode::kInvalidArgument,
                          "cannot update variable 'w' of shape [2] with a gradient of shape [3]"));
  }
  {
    Fixture f;
    std::vector<Output> inits;
    Output w = f.Var("w", kW0, &inits);
    const Node* step = ops::ApplyGradientDescent(f.s, w, Tensor::FromVector<double>({0.1, 0.2}),
                                                 Tensor::FromVector<double>(kGrad));
    EXPECT_EQ(step, nullptr);
    EXPECT_TRUE(StatusHas(f.s.status(), absl::StatusCode::kInvalidArgument,
                          "input 1 must be a scalar, got shape [2]"));
  }
  {
    // Input 0 must be a variable.
    Scope s = ops::NewRootScope();
    Output c = ops::Const(s, Tensor::FromVector<double>({1, 2, 3}));
    const Node* step =
        ops::BuildNode(s, "ApplyGradientDescent", {c, 0.1, Tensor::FromVector<double>(kGrad)}, {},
                       SourceLocation::Current());
    ASSERT_NE(step, nullptr) << s.status();
    auto graph = s.Finalize();
    ASSERT_TRUE(graph.ok());
    auto session = *Session::Create(*graph);
    EXPECT_TRUE(StatusHas(session->Run({}, {}, {step->name()}, nullptr),
                          absl::StatusCode::kInvalidArgument,
                          "input 0 must come from a Variable node, but comes from node 'Const' "
                          "(Const)"));
  }
  {
    Fixture f;
    std::vector<Output> inits;
    Output w = f.Var("w", kW0, &inits);
    const Node* step = ops::ApplyMomentum(f.s, w, w, 0.1, Tensor::FromVector<double>(kGrad), 0.9);
    ASSERT_NE(step, nullptr);
    auto graph = f.s.Finalize();
    auto session = *Session::Create(*graph);
    EXPECT_TRUE(StatusHas(session->Run({}, {}, {step->name()}, nullptr),
                          absl::StatusCode::kInvalidArgument,
                          "inputs 0 and 1 are the same variable 'w'"));
  }
}

}  // namespace
}  // namespace sluice
