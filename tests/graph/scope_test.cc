#include "graph/scope.h"

#include "gtest/gtest.h"
#include "tests/graph/test_ops.h"

namespace sluice {
namespace {

using test::TestOpRegistry;

Output Add(const Scope& s, Input x, Input y, SourceLocation loc = SourceLocation::Current()) {
  return SingleOutput(s.AddNode("Add", {x, y}, {}, loc));
}

Output MatMul(const Scope& s, Input a, Input b, SourceLocation loc = SourceLocation::Current()) {
  return SingleOutput(s.AddNode("MatMul", {a, b}, {}, loc));
}

Output Placeholder(const Scope& s, DType dtype, TensorShape shape) {
  return SingleOutput(s.AddNode("Placeholder", {},
                                {{"dtype", AttrValue(dtype)}, {"shape", AttrValue(shape)}},
                                SourceLocation::Current()));
}

TEST(ScopeTest, NameScopesDevicesAndControlDependencies) {
  Scope root = Scope::NewRootScope(TestOpRegistry());
  Output x = Placeholder(root.WithOpName("x"), DType::kFloat32, TensorShape({kUnknownDim, 4}));
  Scope layer = root.NewSubScope("dense").WithDevice("/job:worker/task:0");
  Output y = Add(layer, x, x);
  Output z = Add(layer, y, x);
  Output w = Add(layer.NewSubScope("inner").WithControlDependencies({z}), z, 1.0f);
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_EQ(x.node()->name(), "x");
  EXPECT_EQ(y.node()->name(), "dense/Add");
  EXPECT_EQ(z.node()->name(), "dense/Add_1");
  EXPECT_EQ(w.node()->name(), "dense/inner/Add");
  EXPECT_EQ(y.node()->requested_device(), "/job:worker/task:0");
  ASSERT_EQ(w.node()->control_inputs().size(), 1u);
  EXPECT_EQ(w.node()->control_inputs()[0], z.node());
  EXPECT_EQ(y.shape(), TensorShape({kUnknownDim, 4}));
  // The literal 1.0f became a float32 Const under the same name scope.
  EXPECT_EQ(w.node()->input(1).node->name(), "dense/inner/Const");
}

TEST(ScopeTest, LiteralConstantsTakeTheOtherInputsDType) {
  Scope root = Scope::NewRootScope(TestOpRegistry());
  Output x = Placeholder(root, DType::kFloat64, TensorShape({2}));
  Output y = Add(root, x, 2.0f);
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_EQ(y.dtype(), DType::kFloat64);
  const Tensor* two = y.node()->input(1).node->attrs().at("value").get_if<Tensor>();
  ASSERT_NE(two, nullptr);
  EXPECT_EQ(two->dtype(), DType::kFloat64);
  EXPECT_EQ(two->scalar<double>(), 2.0);
}

TEST(ScopeTest, ShapeErrorPointsAtTheLineThatBuiltTheNode) {
  Scope root = Scope::NewRootScope(TestOpRegistry());
  Output a = Placeholder(root, DType::kFloat32, TensorShape({2, 3}));
  Output b = Placeholder(root, DType::kFloat32, TensorShape({4, 5}));
  int line = __LINE__ + 1;
  Output bad = MatMul(root.WithOpName("proj"), a, b);
  EXPECT_FALSE(bad.valid());
  // Later ops given an invalid input add nothing and keep the first error.
  Output later = Add(root, bad, a);
  EXPECT_FALSE(later.valid());
  ASSERT_FALSE(root.ok());
  std::string msg(root.status().message());
  EXPECT_NE(msg.find("node 'proj' (MatMul) built at "), std::string::npos) << msg;
  EXPECT_NE(msg.find(absl::StrCat("scope_test.cc:", line)), std::string::npos) << msg;
  EXPECT_NE(msg.find("MatMul inner dimensions differ: [2,3] x [4,5]"), std::string::npos) << msg;
  EXPECT_EQ(root.Finalize().status(), root.status());
}

TEST(ScopeTest, FinalizeFreezesTheGraph) {
  Scope root = Scope::NewRootScope(TestOpRegistry());
  Output x = Placeholder(root, DType::kFloat32, TensorShape({2}));
  absl::StatusOr<std::shared_ptr<const Graph>> g = root.Finalize();
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_TRUE((*g)->finalized());
  Output y = Add(root, x, x);
  EXPECT_FALSE(y.valid());
  EXPECT_EQ(root.status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace sluice
