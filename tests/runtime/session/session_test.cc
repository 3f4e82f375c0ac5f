#include "runtime/session/session.h"

#include <thread>

#include "gtest/gtest.h"
#include "ops/all_ops.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

using test::StatusHas;

class SessionTest : public ::testing::Test {
 protected:
  void Build() {
    x_ = ops::Placeholder(root_.WithOpName("x"), DType::kFloat32, TensorShape({kUnknownDim, 2}));
    w_ = ops::Const(root_.WithOpName("w"),
                    Tensor::FromVector<float>({1, 2, 3, 4}, TensorShape({2, 2})));
    y_ = ops::MatMul(root_.WithOpName("y"), x_, w_);
    z_ = ops::Add(root_.WithOpName("z"), y_, 1.0f);
    ASSERT_TRUE(root_.ok()) << root_.status();
    auto s = Session::Create(*root_.Finalize());
    ASSERT_TRUE(s.ok()) << s.status();
    session_ = *std::move(s);
  }

  Scope root_ = ops::NewRootScope();
  Output x_, w_, y_, z_;
  std::unique_ptr<Session> session_;
};

TEST_F(SessionTest, FeedsAndFetchesByNameAndByHandle) {
  Build();
  Tensor x = Tensor::FromVector<float>({1, 1, 2, 0}, TensorShape({2, 2}));
  std::vector<Tensor> out;
  ASSERT_TRUE(session_->Run({{"x", x}}, {"z:0", "y"}, {}, &out).ok());
  // [1 1; 2 0] x [1 2; 3 4] = [4 6; 2 4]; z = y + 1.
  EXPECT_TRUE(
      test::TensorNear(out[1], Tensor::FromVector<float>({4, 6, 2, 4}, TensorShape({2, 2}))));
  EXPECT_TRUE(
      test::TensorNear(out[0], Tensor::FromVector<float>({5, 7, 3, 5}, TensorShape({2, 2}))));
  ASSERT_TRUE(session_->Run({{x_, x}}, {z_}, &out).ok());
  EXPECT_TRUE(
      test::TensorNear(out[0], Tensor::FromVector<float>({5, 7, 3, 5}, TensorShape({2, 2}))));
}

TEST_F(SessionTest, PreparedExecutorsAreCachedPerSignature) {
  Build();
  Tensor x = Tensor::FromVector<float>({1, 0, 0, 1}, TensorShape({2, 2}));
  std::vector<Tensor> out;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(session_->Run({{x_, x}}, {z_}, &out).ok());
  EXPECT_EQ(session_->num_cached_executors(), 1);
  ASSERT_TRUE(session_->Run({{x_, x}}, {y_}, &out).ok());
  EXPECT_EQ(session_->num_cached_executors(), 2);
  // Feeding y instead of x prunes the MatMul away.
  ASSERT_TRUE(session_->Run({{y_, x}}, {z_}, &out).ok());
  EXPECT_TRUE(
      test::TensorNear(out[0], Tensor::FromVector<float>({2, 1, 1, 2}, TensorShape({2, 2}))));
}

TEST_F(SessionTest, BadFeedsAndFetchesAreRejectedWithClearErrors) {
  Build();
  std::vector<Tensor> out;
  EXPECT_TRUE(StatusHas(session_->Run({}, {"z"}, {}, &out), absl::StatusCode::kInvalidArgument,
                        "placeholder 'x' must be fed a value of dtype float32 and shape [?,2]"));
  EXPECT_TRUE(
      StatusHas(session_->Run({{"x", Tensor::FromVector<double>({1, 2}, TensorShape({1, 2}))}},
                              {"z"}, {}, &out),
                absl::StatusCode::kInvalidArgument,
                "feed for 'x:0' has dtype float64 but the graph expects float32"));
  EXPECT_TRUE(
      StatusHas(session_->Run({{"x", Tensor::FromVector<float>({1, 2, 3}, TensorShape({1, 3}))}},
                              {"z"}, {}, &out),
                absl::StatusCode::kInvalidArgument,
                "feed for 'x:0' has shape [1,3], incompatible with the graph's [?,2]"));
  EXPECT_TRUE(StatusHas(session_->Run({}, {"nope"}, {}, &out), absl::StatusCode::kNotFound,
                        "no node named 'nope'"));
  EXPECT_TRUE(StatusHas(session_->Run({}, {"z:1"}, {}, &out), absl::StatusCode::kInvalidArgument,
                        "'z:1' names output 1"));
  EXPECT_TRUE(StatusHas(session_->Run({}, {}, {"ghost"}, &out), absl::StatusCode::kNotFound,
                        "target 'ghost' is not a node of the graph"));
  Scope other = ops::NewRootScope();
  Output foreign = ops::Const(other, Tensor::Scalar<float>(1));
  EXPECT_TRUE(StatusHas(session_->Run({}, {foreign}, &out), absl::StatusCode::kInvalidArgument,
                        "is not in the session's graph"));
}

TEST_F(SessionTest, KernelErrorNamesNodeAndOp) {
  x_ = ops::Placeholder(root_.WithOpName("a"), DType::kFloat32);
  Output b = ops::Placeholder(root_.WithOpName("b"), DType::kFloat32);
  Output prod = ops::MatMul(root_.WithOpName("prod"), x_, b);
  auto session = *Session::Create(*root_.Finalize());
  std::vector<Tensor> out;
  absl::Status s = session->Run({{x_, Tensor(DType::kFloat32, TensorShape({2, 3}))},
                                 {b, Tensor(DType::kFloat32, TensorShape({4, 5}))}},
                                {prod}, &out);
  EXPECT_TRUE(StatusHas(s, absl::StatusCode::kInvalidArgument, "node 'prod' (MatMul): ")) << s;
  EXPECT_NE(s.message().find("[2,3]"), absl::string_view::npos) << s;
}

TEST_F(SessionTest, VariablesPersistAcrossRuns) {
  Output v = ops::Variable(root_.WithOpName("v"), TensorShape({2}), DType::kFloat32);
  Output init = ops::Assign(root_.WithOpName("init"), v, Tensor::FromVector<float>({1, 2}));
  Output bump = ops::AssignAdd(root_.WithOpName("bump"), v, Tensor::FromVector<float>({10, 10}));
  auto session = *Session::Create(*root_.Finalize());
  std::vector<Tensor> out;
  EXPECT_TRUE(StatusHas(session->Run({}, {v}, &out), absl::StatusCode::kFailedPrecondition,
                        "variable 'v' is not initialized"));
  ASSERT_TRUE(session->Run({}, {init}, &out).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(session->Run({}, {bump}, &out).ok());
  ASSERT_TRUE(session->Run({}, {v}, &out).ok());
  EXPECT_TRUE(test::TensorNear(out[0], Tensor::FromVector<float>({31, 32})));
}

TEST_F(SessionTest, CancelledRunFailsWithTheReason) {
  Build();
  CancellationManager cm;
  cm.StartCancel(absl::CancelledError("stop requested"));
  std::vector<Tensor> out;
  RunOptions options;
  options.cancellation = &cm;
  absl::Status s =
      session_->Run({{x_, Tensor(DType::kFloat32, TensorShape({1, 2}))}}, {z_}, &out, {}, options);
  EXPECT_TRUE(StatusHas(s, absl::StatusCode::kCancelled, "stop requested"));
}

TEST_F(SessionTest, ConcurrentRunsFromManyThreads) {
  Build();
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        float v = static_cast<float>(t * 100 + i);
        Tensor x = Tensor::FromVector<float>({v, 0}, TensorShape({1, 2}));
        std::vector<Tensor> out;
        if (!session_->Run({{x_, x}}, {z_}, &out).ok() || out[0].flat<float>()(0) != v * 1 + 1 ||
            out[0].flat<float>()(1) != v * 2 + 1) {
          wrong.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(SessionCreateTest, RejectsUnfinalizedGraph) {
  auto g = std::make_shared<Graph>();
  EXPECT_TRUE(StatusHas(Session::Create(g).status(), absl::StatusCode::kFailedPrecondition,
                        "needs a finalized graph"));
}

}  // namespace
}  // namespace sluice
