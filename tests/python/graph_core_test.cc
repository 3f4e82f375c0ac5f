#include "python/graph_core.h"

#include "gtest/gtest.h"
#include "runtime/session/session.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace python {
namespace {

using test::StatusHas;
using test::TensorEq;

InputValue Of(const Node* node, int index = 0) {
  InputValue v;
  v.output = Endpoint{node, index};
  return v;
}

InputValue Literal(Tensor t, bool python_number) {
  InputValue v;
  v.is_literal = true;
  v.literal = std::move(t);
  v.literal_is_default_typed = python_number;
  return v;
}

InputArg One(InputValue v) { return InputArg{false, {std::move(v)}}; }

const Node* Placeholder(GraphCore& g, DType dtype, const std::string& name) {
  absl::StatusOr<const Node*> n =
      g.AddOp("Placeholder", {}, {{"dtype", AttrValue(dtype)}}, name, "model.py:1");
  EXPECT_TRUE(n.ok()) << n.status();
  return *n;
}

TEST(GraphCoreTest, NamesAreUniqueUnderNameScopes) {
  auto g = std::make_shared<GraphCore>();
  EXPECT_EQ(Placeholder(*g, DType::kFloat32, "x")->name(), "x");
  EXPECT_EQ(Placeholder(*g, DType::kFloat32, "x")->name(), "x_1");
  EXPECT_EQ(g->PushNameScope("dense"), "dense/");
  EXPECT_EQ(Placeholder(*g, DType::kFloat32, "")->name(), "dense/Placeholder");
  EXPECT_EQ(g->PushNameScope("inner"), "dense/inner/");
  EXPECT_EQ(Placeholder(*g, DType::kFloat32, "")->name(), "dense/inner/Placeholder");
  ASSERT_TRUE(g->PopFrame().ok());
  ASSERT_TRUE(g->PopFrame().ok());
  EXPECT_EQ(g->PushNameScope("dense"), "dense_1/");  // A used scope name is made unique...
  ASSERT_TRUE(g->PopFrame().ok());
  EXPECT_EQ(g->PushNameScope("dense/"), "dense/");  // ...unless re-entered by its full name.
  EXPECT_EQ(g->PushNameScope(""), "");
  ASSERT_TRUE(g->PopFrame().ok());
  ASSERT_TRUE(g->PopFrame().ok());
  EXPECT_TRUE(StatusHas(g->PopFrame(), absl::StatusCode::kFailedPrecondition, "no name scope"));
}

TEST(GraphCoreTest, DevicesAndControlDependenciesApplyToNewNodes) {
  auto g = std::make_shared<GraphCore>();
  const Node* a = Placeholder(*g, DType::kFloat32, "a");
  g->PushDevice("/job:worker/task:1");
  g->PushControlDependencies({a}, /*clear=*/false);
  const Node* b = Placeholder(*g, DType::kFloat32, "b");
  g->PushControlDependencies({}, /*clear=*/true);
  const Node* c = Placeholder(*g, DType::kFloat32, "c");
  EXPECT_EQ(b->requested_device(), "/job:worker/task:1");
  ASSERT_EQ(b->control_inputs().size(), 1u);
  EXPECT_EQ(b->control_inputs()[0], a);
  EXPECT_TRUE(c->control_inputs().empty());
}

TEST(GraphCoreTest, PythonNumbersTakeTheDtypeTheOpNeeds) {
  auto g = std::make_shared<GraphCore>();
  const Node* x = Placeholder(*g, DType::kFloat64, "x");
  // 0.1 stays the float64 0.1 (not a float32 0.1 widened).
  absl::StatusOr<const Node*> mul = g->AddOp(
      "Mul", {One(Of(x)), One(Literal(Tensor::Scalar<double>(0.1), true))}, {}, "", "model.py:2");
  ASSERT_TRUE(mul.ok()) << mul.status();
  const Node* c = (*mul)->input(1).node;
  EXPECT_TRUE(TensorEq(*c->GetAttr<Tensor>("value"), Tensor::Scalar<double>(0.1)));
  // Alone, a Python float is float32 and an int int32.
  absl::StatusOr<const Node*> add = g->AddOp("Add",
                                             {One(Literal(Tensor::Scalar<double>(1.5), true)),
                                              One(Literal(Tensor::Scalar<int64_t>(2), true))},
                                             {}, "", "model.py:3");
  ASSERT_TRUE(add.ok()) << add.status();
  EXPECT_EQ((*add)->output_type(0), DType::kFloat32);
  // A lossy conversion is an error naming the node, the source line and the input.
  const Node* i = Placeholder(*g, DType::kInt32, "i");
  absl::StatusOr<const Node*> bad = g->AddOp(
      "Add", {One(Of(i)), One(Literal(Tensor::Scalar<double>(1.5), true))}, {}, "", "model.py:4");
  EXPECT_TRUE(StatusHas(bad.status(), absl::StatusCode::kInvalidArgument,
                        "node 'Add_1' (Add) built at model.py:4: input 'y' of Add: the literal "
                        "float64[] {1.5} cannot be converted to int32"));
}

TEST(GraphCoreTest, ErrorsLeaveTheGraphUsableAndFinalizeSharesIt) {
  auto g = std::make_shared<GraphCore>();
  const Node* a = *g->AddConst(Tensor::FromVector<float>({1, 2, 3}, TensorShape({1, 3})), "a", "");
  absl::StatusOr<const Node*> bad =
      g->AddOp("MatMul", {One(Of(a)), One(Of(a))}, {}, "mm", "model.py:7");
  EXPECT_TRUE(StatusHas(bad.status(), absl::StatusCode::kInvalidArgument,
                        "node 'mm' (MatMul) built at model.py:7: MatMul inner dimensions differ"));
  absl::StatusOr<const Node*> concat = g->AddOp(
      "Concat", {InputArg{true, {Of(a), Of(a)}}, One(Literal(Tensor::Scalar<int64_t>(0), true))},
      {}, "", "");
  ASSERT_TRUE(concat.ok()) << concat.status();
  EXPECT_EQ((*concat)->output_shape(0), TensorShape({2, 3}));
  absl::StatusOr<std::shared_ptr<const Graph>> graph = g->Finalize();
  ASSERT_TRUE(graph.ok());
  EXPECT_TRUE(StatusHas(g->AddOp("NoOp", {}, {}, "", "model.py:9").status(),
                        absl::StatusCode::kFailedPrecondition, "the graph is finalized"));
  absl::StatusOr<std::unique_ptr<Session>> session = Session::Create(*graph);
  ASSERT_TRUE(session.ok());
  std::vector<Tensor> out;
  ASSERT_TRUE((*session)->Run({}, {Output(*concat, 0)}, &out).ok());
  EXPECT_TRUE(TensorEq(out[0], Tensor::FromVector<float>({1, 2, 3, 1, 2, 3}, TensorShape({2, 3}))));
}

}  // namespace
}  // namespace python
}  // namespace sluice
