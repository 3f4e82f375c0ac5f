// Variables: reading before and after Assign, AssignAdd/AssignSub across runs of one session,
// copy-on-write of values a caller still holds, and every error path.
#include "ops/state_ops.h"

#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "ops/all_ops.h"
#include "ops/op_builder.h"
#include "runtime/session/session.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

using test::RunScope1;
using test::StatusHas;
using test::TensorEq;

template <typename T>
Tensor Vals(const std::vector<T>& v) {
  return Tensor::FromVector<T>(v);
}

std::unique_ptr<Session> MakeSession(const Scope& s) {
  absl::StatusOr<std::shared_ptr<const Graph>> graph = s.Finalize();
  EXPECT_TRUE(graph.ok()) << graph.status();
  absl::StatusOr<std::unique_ptr<Session>> session = Session::Create(*graph);
  EXPECT_TRUE(session.ok()) << session.status();
  return std::move(*session);
}

// Fetches one output; fails the test on error.
Tensor Fetch(Session* session, const Output& out) {
  std::vector<Tensor> result;
  absl::Status status = session->Run({}, {out}, &result);
  EXPECT_TRUE(status.ok()) << status;
  return result.empty() ? Tensor() : result[0];
}

TEST(VariableTest, ReadBeforeAssignFails) {
  Scope s = ops::NewRootScope();
  Output w = ops::Variable(s.WithOpName("w1"), TensorShape({2}), DType::kFloat32);
  absl::StatusOr<Tensor> out = RunScope1(s, w);
  EXPECT_TRUE(StatusHas(out.status(), absl::StatusCode::kFailedPrecondition,
                        "node 'w1' (Variable): variable 'w1' is not initialized"));
}

TEST(VariableTest, ReadBeforeAssignFailsEvenWithAnAssignInTheGraph) {
  Scope s = ops::NewRootScope();
  Output w = ops::Variable(s.WithOpName("w1"), TensorShape({2}), DType::kFloat32);
  ops::Assign(s, w, Vals<float>({1, 2}));
  Output y = ops::Identity(s, w);
  std::unique_ptr<Session> session = MakeSession(s);
  std::vector<Tensor> out;
  EXPECT_TRUE(StatusHas(session->Run({}, {w}, &out), absl::StatusCode::kFailedPrecondition,
                        "variable 'w1' is not initialized"));
  EXPECT_TRUE(StatusHas(session->Run({}, {y}, &out), absl::StatusCode::kFailedPrecondition,
                        "variable 'w1' is not initialized"));
}

TEST(VariableTest, AssignThenRead) {
  Scope s = ops::NewRootScope();
  Output w = ops::Variable(s.WithOpName("w"), TensorShape({2, 2}), DType::kFloat64);
  Output init = ops::Assign(s, w, Tensor::FromVector<double>({1, 2, 3, 4}, TensorShape({2, 2})));
  Output doubled = ops::Identity(s, w);
  EXPECT_EQ(w.shape(), TensorShape({2, 2}));
  EXPECT_EQ(init.shape(), TensorShape({2, 2}));
  std::unique_ptr<Session> session = MakeSession(s);
  const Tensor expected = Tensor::FromVector<double>({1, 2, 3, 4}, TensorShape({2, 2}));
  EXPECT_TRUE(TensorEq(Fetch(session.get(), init), expected));
  EXPECT_TRUE(TensorEq(Fetch(session.get(), w), expected));
  EXPECT_TRUE(TensorEq(Fetch(session.get(), doubled), expected));
}

TEST(VariableTest, AssignAsTargetOnly) {
  Scope s = ops::NewRootScope();
  Output w = ops::Variable(s.WithOpName("w"), TensorShape({3}), DType::kInt64);
  Output init = ops::Assign(s, w, Vals<int64_t>({7, 8, 9}));
  std::unique_ptr<Session> session = MakeSession(s);
  ASSERT_TRUE(session->Run({}, {}, nullptr, {init}).ok());
  EXPECT_TRUE(TensorEq(Fetch(session.get(), w), Vals<int64_t>({7, 8, 9})));
}

TEST(VariableTest, BoolAndInt32Variables) {
  Scope s = ops::NewRootScope();
  Output b = ops::Variable(s.WithOpName("b"), TensorShape({2}), DType::kBool);
  Output i = ops::Variable(s.WithOpName("i"), TensorShape({}), DType::kInt32);
  Output init_b = ops::Assign(s, b, ops::Const(s, Vals<bool>({true, false})));
  Output init_i = ops::Assign(s, i, 41);
  Output inc = ops::AssignAdd(s, i, 1);
  std::unique_ptr<Session> session = MakeSession(s);
  ASSERT_TRUE(session->Run({}, {}, nullptr, {init_b, init_i}).ok());
  EXPECT_TRUE(TensorEq(Fetch(session.get(), b), Vals<bool>({true, false})));
  EXPECT_TRUE(TensorEq(Fetch(session.get(), inc), Tensor::Scalar<int32_t>(42)));
  EXPECT_TRUE(TensorEq(Fetch(session.get(), i), Tensor::Scalar<int32_t>(42)));
}

template <typename T>
void CheckAddSubOverRuns() {
  Scope s = ops::NewRootScope();
  Output w = ops::Variable(s.WithOpName("w"), TensorShape({3}), DTypeOf<T>::value);
  Output init = ops::Assign(s, w, ops::Const(s, Vals<T>({T(10), T(20), T(30)})));
  Output add = ops::AssignAdd(s, w, ops::Const(s, Vals<T>({T(1), T(2), T(3)})));
  Output sub = ops::AssignSub(s, w, ops::Const(s, Vals<T>({T(4), T(4), T(4)})));
  std::unique_ptr<Session> session = MakeSession(s);
  ASSERT_TRUE(session->Run({}, {}, nullptr, {init}).ok());
  // A plain running value, updated the same way, is the reference.
  std::vector<T> ref = {T(10), T(20), T(30)};
  for (int run = 0; run < 4; ++run) {
    for (int k = 0; k < 3; ++k) ref[k] += T(k + 1);
    EXPECT_TRUE(TensorEq(Fetch(session.get(), add), Vals<T>(ref))) << "add run " << run;
  }
  for (int run = 0; run < 3; ++run) {
    for (int k = 0; k < 3; ++k) ref[k] -= T(4);
    EXPECT_TRUE(TensorEq(Fetch(session.get(), sub), Vals<T>(ref))) << "sub run " << run;
  }
  // Updates run as targets only (their outputs unused) update the variable too.
  for (int run = 0; run < 2; ++run) {
    ASSERT_TRUE(session->Run({}, {}, nullptr, {add}).ok());
    for (int k = 0; k < 3; ++k) ref[k] += T(k + 1);
  }
  EXPECT_TRUE(TensorEq(Fetch(session.get(), w), Vals<T>(ref)));
  EXPECT_TRUE(TensorEq(Fetch(session.get(), w), Vals<T>({T(4), T(20), T(36)})));
}

TEST(VariableTest, AssignAddSubOverRunsEveryDtype) {
  CheckAddSubOverRuns<float>();
  CheckAddSubOverRuns<double>();
  CheckAddSubOverRuns<int32_t>();
  CheckAddSubOverRuns<int64_t>();
}

TEST(VariableTest, LargeUpdateMatchesLoop) {
  const int64_t n = 100000;  // Past the inline threshold: evaluated on the thread pool.
  std::vector<float> init(n), delta(n), expected(n);
  for (int64_t i = 0; i < n; ++i) {
    init[i] = static_cast<float>(i % 97) * 0.5f;
    delta[i] = static_cast<float>(i % 13) - 6.0f;
    expected[i] = init[i] + 2 * delta[i];
  }
  Scope s = ops::NewRootScope();
  Output w = ops::Variable(s.WithOpName("big"), TensorShape({n}), DType::kFloat32);
  Output assign = ops::Assign(s, w, ops::Const(s, Vals<float>(init)));
  Output add = ops::AssignAdd(s, w, ops::Const(s, Vals<float>(delta)));
  std::unique_ptr<Session> session = MakeSession(s);
  ASSERT_TRUE(session->Run({}, {}, nullptr, {assign}).ok());
  ASSERT_TRUE(session->Run({}, {}, nullptr, {add}).ok());
  ASSERT_TRUE(session->Run({}, {}, nullptr, {add}).ok());
  EXPECT_TRUE(TensorEq(Fetch(session.get(), w), Vals<float>(expected)));
}

TEST(VariableTest, CopyOnWriteKeepsFetchedValues) {
  Scope s = ops::NewRootScope();
  Output w = ops::Variable(s.WithOpName("w"), TensorShape({2}), DType::kFloat32);
  Output init = ops::Assign(s, w, Vals<float>({1, 2}));
  Output add = ops::AssignAdd(s, w, Vals<float>({10, 10}));
  Output sub = ops::AssignSub(s, w, Vals<float>({1, 1}));
  std::unique_ptr<Session> session = MakeSession(s);
  Tensor assigned = Fetch(session.get(), init);
  Tensor before = Fetch(session.get(), w);
  ASSERT_TRUE(session->Run({}, {}, nullptr, {add}).ok());
  EXPECT_TRUE(TensorEq(assigned, Vals<float>({1, 2})));
  EXPECT_TRUE(TensorEq(before, Vals<float>({1, 2})));
  Tensor after_add = Fetch(session.get(), w);
  EXPECT_TRUE(TensorEq(after_add, Vals<float>({11, 12})));
  EXPECT_FALSE(after_add.SharesBufferWith(before));
  // An update's own output is a value too: later updates leave it alone.
  Tensor sub_out = Fetch(session.get(), sub);
  ASSERT_TRUE(session->Run({}, {}, nullptr, {sub}).ok());
  ASSERT_TRUE(session->Run({}, {}, nullptr, {add}).ok());
  EXPECT_TRUE(TensorEq(sub_out, Vals<float>({10, 11})));
  EXPECT_TRUE(TensorEq(after_add, Vals<float>({11, 12})));
  EXPECT_TRUE(TensorEq(Fetch(session.get(), w), Vals<float>({19, 20})));
}

TEST(VariableTest, ReadAndUpdateInOneRunSeeTheOldValue) {
  // w feeds y, and y feeds the update: y is computed from the value before the update.
  Scope s = ops::NewRootScope();
  Output w = ops::Variable(s.WithOpName("w"), TensorShape({2}), DType::kFloat32);
  Output init = ops::Assign(s, w, Vals<float>({1, 2}));
  Output y = ops::Identity(s, w);
  Output update = ops::AssignAdd(s, w, y);  // w += w
  std::unique_ptr<Session> session = MakeSession(s);
  ASSERT_TRUE(session->Run({}, {}, nullptr, {init}).ok());
  std::vector<Tensor> out;
  ASSERT_TRUE(session->Run({}, {y, update}, &out).ok());
  EXPECT_TRUE(TensorEq(out[0], Vals<float>({1, 2})));
  EXPECT_TRUE(TensorEq(out[1], Vals<float>({2, 4})));
  ASSERT_TRUE(session->Run({}, {y, update}, &out).ok());
  EXPECT_TRUE(TensorEq(out[0], Vals<float>({2, 4})));
  EXPECT_TRUE(TensorEq(out[1], Vals<float>({4, 8})));
}

TEST(VariableTest, ConcurrentUpdatesAreNotLost) {
  // Runs of one session may overlap; Variable::mu serialises the read-modify-write.
  Scope s = ops::NewRootScope();
  Output w = ops::Variable(s.WithOpName("counter"), TensorShape({64}), DType::kInt64);
  Output init = ops::Assign(s, w, ops::Const(s, Vals<int64_t>(std::vector<int64_t>(64, 0))));
  Output inc = ops::AssignAdd(s, w, ops::Const(s, Vals<int64_t>(std::vector<int64_t>(64, 1))));
  Output read = ops::Identity(s, w);
  std::unique_ptr<Session> session = MakeSession(s);
  ASSERT_TRUE(session->Run({}, {}, nullptr, {init}).ok());
  constexpr int kThreads = 4, kRuns = 50;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRuns; ++i) {
        std::vector<Tensor> out;
        // Odd threads also read, so updates often find the buffer shared and copy.
        absl::Status st =
            t % 2 ? session->Run({}, {read}, &out, {inc}) : session->Run({}, {}, nullptr, {inc});
        EXPECT_TRUE(st.ok()) << st;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_TRUE(
      TensorEq(Fetch(session.get(), w), Vals<int64_t>(std::vector<int64_t>(64, kThreads * kRuns))));
}

TEST(VariableTest, EachSessionHasItsOwnVariables) {
  Scope s = ops::NewRootScope();
  Output w = ops::Variable(s.WithOpName("w1"), TensorShape({1}), DType::kFloat32);
  Output init = ops::Assign(s, w, Vals<float>({5}));
  std::shared_ptr<const Graph> graph = *s.Finalize();
  std::unique_ptr<Session> a = *Session::Create(graph);
  std::unique_ptr<Session> b = *Session::Create(graph);
  ASSERT_TRUE(a->Run({}, {}, nullptr, {init}).ok());
  EXPECT_TRUE(TensorEq(Fetch(a.get(), w), Vals<float>({5})));
  std::vector<Tensor> out;
  EXPECT_TRUE(StatusHas(b->Run({}, {w}, &out), absl::StatusCode::kFailedPrecondition,
                        "variable 'w1' is not initialized"));
}

TEST(VariableTest, SharedNameAndValidateShapeFalse) {
  // Two Variable nodes with one shared_name are one variable. An Assign built directly on a
  // Variable node that feeds nothing else (a write handle) works before initialisation.
  Scope s = ops::NewRootScope();
  AttrMap attrs = {{"dtype", AttrValue(DType::kFloat32)},
                   {"shape", AttrValue(TensorShape({2}))},
                   {"shared_name", AttrValue("shared")}};
  Output handle = ops::BuildOp(s.WithOpName("handle"), "Variable", {}, attrs, {});
  Output reader = ops::BuildOp(s.WithOpName("reader"), "Variable", {}, attrs, {});
  Output assign = ops::BuildOp(s, "Assign", {handle, Vals<float>({1, 2, 3})},
                               {{"validate_shape", AttrValue(false)}}, {});
  EXPECT_EQ(assign.shape(), TensorShape({3}));
  std::unique_ptr<Session> session = MakeSession(s);
  EXPECT_TRUE(TensorEq(Fetch(session.get(), assign), Vals<float>({1, 2, 3})));
  EXPECT_TRUE(TensorEq(Fetch(session.get(), reader), Vals<float>({1, 2, 3})));
}

TEST(VariableTest, AssignShapeErrors) {
  {
    Scope s = ops::NewRootScope();
    Output w = ops::Variable(s.WithOpName("w1"), TensorShape({2}), DType::kFloat32);
    ops::Assign(s.WithOpName("a"), w, Vals<float>({1, 2, 3}));
    EXPECT_TRUE(StatusHas(s.status(), absl::StatusCode::kInvalidArgument, "node 'a' (Assign)"));
    EXPECT_TRUE(StatusHas(s.status(), absl::StatusCode::kInvalidArgument,
                          "cannot assign a value of shape [3] to a variable of shape [2]"));
  }
  {
    Scope s = ops::NewRootScope();
    Output w = ops::Variable(s.WithOpName("w1"), TensorShape({2}), DType::kFloat32);
    Output v = ops::Placeholder(s, DType::kFloat32);
    Output a = ops::Assign(s.WithOpName("a"), w, v);
    absl::StatusOr<Tensor> out = RunScope1(s, a, {{v, Vals<float>({1, 2, 3})}});
    EXPECT_TRUE(StatusHas(out.status(), absl::StatusCode::kInvalidArgument,
                          "node 'a' (Assign): cannot assign a value of shape [3] to variable "
                          "'w1' of shape [2]"));
  }
}

TEST(VariableTest, UpdateErrors) {
  {
    Scope s = ops::NewRootScope();
    Output w = ops::Variable(s.WithOpName("w1"), TensorShape({2}), DType::kFloat32);
    Output add = ops::AssignAdd(s.WithOpName("add"), w, Vals<float>({1, 1}));
    absl::StatusOr<Tensor> out = RunScope1(s, add);
    EXPECT_TRUE(StatusHas(out.status(), absl::StatusCode::kFailedPrecondition,
                          "node 'add' (AssignAdd): variable 'w1' is not initialized"));
  }
  {
    Scope s = ops::NewRootScope();
    Output w = ops::Variable(s.WithOpName("w1"), TensorShape({2}), DType::kFloat32);
    ops::AssignSub(s, w, Vals<float>({1, 1, 1}));
    EXPECT_TRUE(StatusHas(s.status(), absl::StatusCode::kInvalidArgument,
                          "cannot update a variable of shape [2] with a value of shape [3]"));
  }
  {
    // The declared shape is [?]: the kernel compares with the current value.
    Scope s = ops::NewRootScope();
    Output w = ops::Variable(s.WithOpName("w1"), TensorShape({-1}), DType::kFloat32);
    Output init = ops::Assign(s, w, Vals<float>({1, 2}));
    Output sub = ops::AssignSub(s.WithOpName("sub"), w, Vals<float>({1, 1, 1}));
    std::unique_ptr<Session> session = MakeSession(s);
    ASSERT_TRUE(session->Run({}, {}, nullptr, {init}).ok());
    std::vector<Tensor> out;
    EXPECT_TRUE(StatusHas(session->Run({}, {sub}, &out), absl::StatusCode::kInvalidArgument,
                          "node 'sub' (AssignSub): cannot update variable 'w1' of shape [2] with "
                          "a value of shape [3]"));
  }
  {
    Scope s = ops::NewRootScope();
    Output w = ops::Variable(s, TensorShape({2}), DType::kBool);
    ops::AssignAdd(s, w, ops::Const(s, Vals<bool>({true, true})));
    EXPECT_TRUE(StatusHas(s.status(), absl::StatusCode::kInvalidArgument,
                          "attribute T is bool, which is not one of {float32, float64, int32, "
                          "int64}"));
  }
}

TEST(VariableTest, RefMustComeFromAVariable) {
  Scope s = ops::NewRootScope();
  Output c = ops::Const(s.WithOpName("c"), Vals<float>({1, 2}));
  Output a = ops::Assign(s.WithOpName("a"), c, Vals<float>({3, 4}));
  ASSERT_TRUE(s.ok()) << s.status();
  absl::StatusOr<Tensor> out = RunScope1(s, a);
  EXPECT_TRUE(StatusHas(out.status(), absl::StatusCode::kInvalidArgument,
                        "node 'a' (Assign): input 0 ('ref') must come from a Variable node, but "
                        "comes from node 'c' (Const)"));
}

}  // namespace
}  // namespace sluice
