#include "graph/graph.h"

#include "graph/scope.h"
#include "gtest/gtest.h"
#include "tests/graph/test_ops.h"

namespace sluice {
namespace {

using test::TestOpRegistry;

::testing::AssertionResult Has(const absl::Status& s, absl::StatusCode code,
                               absl::string_view text) {
  if (s.code() == code && s.message().find(text) != absl::string_view::npos) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "got " << s;
}

NodeSpec ConstSpec(const std::string& name, Tensor value) {
  NodeSpec spec;
  spec.name = name;
  spec.op = "Const";
  spec.attrs = {{"value", AttrValue(value)}, {"dtype", AttrValue(value.dtype())}};
  return spec;
}

TEST(GraphTest, AddNodeInfersTypeAttributesAndShapes) {
  Graph g(TestOpRegistry());
  Node* a = *g.AddNode(ConstSpec("a", Tensor(DType::kFloat32, TensorShape({2, 3}))));
  Node* b = *g.AddNode(ConstSpec("b", Tensor(DType::kFloat32, TensorShape({3}))));
  NodeSpec add{.name = "sum", .op = "Add", .inputs = {{a, 0}, {b, 0}}};
  absl::StatusOr<Node*> sum = g.AddNode(add);
  ASSERT_TRUE(sum.ok()) << sum.status();
  EXPECT_EQ(*(*sum)->GetAttr<DType>("T"), DType::kFloat32);
  EXPECT_EQ((*sum)->output_type(0), DType::kFloat32);
  EXPECT_EQ((*sum)->output_shape(0), TensorShape({2, 3}));
  ASSERT_EQ(a->out_edges().size(), 1u);
  EXPECT_EQ(a->out_edges()[0].dst, *sum);
}

TEST(GraphTest, ErrorsNameTheNode) {
  Graph g(TestOpRegistry());
  Node* f = *g.AddNode(ConstSpec("f", Tensor(DType::kFloat32, TensorShape({2, 3}))));
  Node* d = *g.AddNode(ConstSpec("d", Tensor(DType::kFloat64, TensorShape({2, 3}))));
  Node* i = *g.AddNode(ConstSpec("i", Tensor(DType::kInt64, TensorShape({2}))));

  EXPECT_TRUE(Has(g.AddNode(NodeSpec{.name = "x", .op = "Bogus"}).status(),
                  absl::StatusCode::kNotFound, "node 'x' (Bogus): unknown op 'Bogus'"));
  EXPECT_TRUE(Has(g.AddNode(ConstSpec("f", Tensor::Scalar<float>(1))).status(),
                  absl::StatusCode::kAlreadyExists, "duplicate node name 'f'"));
  EXPECT_TRUE(
      Has(g.AddNode(NodeSpec{.name = "mix", .op = "Add", .inputs = {{f, 0}, {d, 0}}}).status(),
          absl::StatusCode::kInvalidArgument,
          "node 'mix' (Add): input 1 ('y' from d:0) has dtype float64 but attribute T is "
          "float32"));
  EXPECT_TRUE(
      Has(g.AddNode(NodeSpec{.name = "ints", .op = "Add", .inputs = {{i, 0}, {i, 0}}}).status(),
          absl::StatusCode::kInvalidArgument,
          "node 'ints' (Add): attribute T is int64, which is not one of {float32, "
          "float64, int32}"));
  EXPECT_TRUE(Has(g.AddNode(NodeSpec{.name = "one", .op = "Add", .inputs = {{f, 0}}}).status(),
                  absl::StatusCode::kInvalidArgument, "node 'one' (Add): expects 2 inputs, got 1"));
  EXPECT_TRUE(
      Has(g.AddNode(NodeSpec{.name = "bad_out", .op = "Add", .inputs = {{f, 3}, {f, 0}}}).status(),
          absl::StatusCode::kInvalidArgument, "input f:3 does not exist"));
  NodeSpec wrong_attr{.name = "mm", .op = "MatMul", .inputs = {{f, 0}, {f, 0}}};
  wrong_attr.attrs["transpose_a"] = AttrValue(int64_t{1});
  EXPECT_TRUE(Has(g.AddNode(wrong_attr).status(), absl::StatusCode::kInvalidArgument,
                  "node 'mm' (MatMul): attribute 'transpose_a' must be a bool, got a int"));
  NodeSpec unknown_attr{.name = "mm2", .op = "MatMul", .inputs = {{f, 0}, {f, 0}}};
  unknown_attr.attrs["colour"] = AttrValue("red");
  EXPECT_TRUE(Has(g.AddNode(unknown_attr).status(), absl::StatusCode::kInvalidArgument,
                  "node 'mm2' (MatMul): unknown attribute 'colour'"));
  EXPECT_TRUE(Has(g.AddNode(NodeSpec{.name = "mm3",
                                     .op = "MatMul",
                                     .inputs = {{f, 0}, {f, 0}},
                                     .source_location = "model.cc:7"})
                      .status(),
                  absl::StatusCode::kInvalidArgument,
                  "node 'mm3' (MatMul) built at model.cc:7: MatMul inner dimensions differ: "
                  "[2,3] x [2,3]"));
  EXPECT_TRUE(Has(g.AddNode(NodeSpec{.name = "bad name!", .op = "NoOp"}).status(),
                  absl::StatusCode::kInvalidArgument, "invalid node name"));
  // Names travel in keys and error messages: a long one is refused, quoted only in part.
  EXPECT_TRUE(Has(
      g.AddNode(NodeSpec{.name = std::string(100000, 'n'), .op = "NoOp"}).status(),
      absl::StatusCode::kInvalidArgument,
      "node name '" + std::string(64, 'n') + "...' is 100000 bytes long, over the limit of 1024"));
  EXPECT_TRUE(g.AddNode(NodeSpec{.name = std::string(1024, 'n'), .op = "NoOp"}).ok());
}

TEST(GraphTest, ListArgumentsInferTheirLength) {
  Graph g(TestOpRegistry());
  Node* a = *g.AddNode(ConstSpec("a", Tensor(DType::kFloat32, TensorShape({2}))));
  Node* axis = *g.AddNode(ConstSpec("axis", Tensor::Scalar<int64_t>(0)));
  absl::StatusOr<Node*> concat = g.AddNode(
      NodeSpec{.name = "c", .op = "Concat", .inputs = {{a, 0}, {a, 0}, {a, 0}, {axis, 0}}});
  ASSERT_TRUE(concat.ok()) << concat.status();
  EXPECT_EQ(*(*concat)->GetAttr<int64_t>("N"), 3);
  NodeSpec split{.name = "s", .op = "Split", .inputs = {{a, 0}}};
  split.attrs["num_split"] = AttrValue(int64_t{4});
  absl::StatusOr<Node*> s = g.AddNode(split);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->num_outputs(), 4);
  NodeSpec zero_split{.name = "s0", .op = "Split", .inputs = {{a, 0}}};
  zero_split.attrs["num_split"] = AttrValue(int64_t{0});
  EXPECT_TRUE(Has(g.AddNode(zero_split).status(), absl::StatusCode::kInvalidArgument,
                  "attribute num_split is 0, below its minimum 1"));
}

TEST(GraphTest, FinalizedGraphRejectsNewNodes) {
  Graph g(TestOpRegistry());
  ASSERT_TRUE(g.AddNode(NodeSpec{.name = "n", .op = "NoOp"}).ok());
  ASSERT_TRUE(g.Finalize().ok());
  EXPECT_TRUE(Has(g.AddNode(NodeSpec{.name = "m", .op = "NoOp"}).status(),
                  absl::StatusCode::kFailedPrecondition, "the graph is finalized"));
}

TEST(GraphTest, PruneKeepsOnlyWhatFetchesNeed) {
  Graph g(TestOpRegistry());
  Node* a = *g.AddNode(ConstSpec("a", Tensor::Scalar<float>(1)));
  Node* b = *g.AddNode(ConstSpec("b", Tensor::Scalar<float>(2)));
  Node* unused = *g.AddNode(ConstSpec("unused", Tensor::Scalar<float>(3)));
  Node* sum = *g.AddNode(NodeSpec{.name = "sum", .op = "Add", .inputs = {{a, 0}, {b, 0}}});
  Node* after = *g.AddNode(NodeSpec{.name = "after", .op = "NoOp", .control_inputs = {sum}});
  (void)unused;
  auto names = [](const std::vector<const Node*>& nodes) {
    std::vector<std::string> out;
    for (const Node* n : nodes) out.push_back(n->name());
    return out;
  };
  EXPECT_EQ(names(PruneForFetches(g, {{sum, 0}}, {}, {})),
            (std::vector<std::string>{"a", "b", "sum"}));
  EXPECT_EQ(names(PruneForFetches(g, {}, {after}, {})),
            (std::vector<std::string>{"a", "b", "sum", "after"}));
  // Feeding `sum` cuts its inputs off.
  EXPECT_EQ(names(PruneForFetches(g, {{sum, 0}}, {}, {{sum, 0}})),
            (std::vector<std::string>{"sum"}));
}

TEST(GraphTest, ParseEndpointAndUniqueName) {
  Graph g(TestOpRegistry());
  Node* a = *g.AddNode(ConstSpec("a", Tensor::Scalar<float>(1)));
  EXPECT_EQ(g.ParseEndpoint("a")->node, a);
  EXPECT_EQ(g.ParseEndpoint("a:0")->index, 0);
  EXPECT_TRUE(Has(g.ParseEndpoint("a:1").status(), absl::StatusCode::kInvalidArgument,
                  "node 'a' (Const) has 1 outputs; 'a:1' names output 1"));
  EXPECT_TRUE(
      Has(g.ParseEndpoint("zz").status(), absl::StatusCode::kNotFound, "no node named 'zz'"));
  EXPECT_EQ(g.UniqueName("a"), "a_1");
  EXPECT_EQ(g.UniqueName("b"), "b");
}

TEST(OpDefBuilderTest, RejectsMalformedSpecs) {
  EXPECT_TRUE(Has(OpDefBuilder("X").Input("no colon").Build().status(),
                  absl::StatusCode::kInvalidArgument, "op X: cannot parse spec 'no colon'"));
  EXPECT_TRUE(Has(OpDefBuilder("X").Input("x: T").Build().status(),
                  absl::StatusCode::kInvalidArgument,
                  "op X: argument 'x' uses undeclared attribute 'T'"));
  EXPECT_TRUE(Has(OpDefBuilder("X").Attr("a: colour").Build().status(),
                  absl::StatusCode::kInvalidArgument, "unknown attribute kind 'colour'"));
  EXPECT_TRUE(Has(OpDefBuilder("X").Attr("a: int = x").Build().status(),
                  absl::StatusCode::kInvalidArgument, "bad default 'x' for int"));
  absl::StatusOr<OpDef> ok = OpDefBuilder("X")
                                 .Attr("s: shape = [2,-1]")
                                 .Attr("l: list(int) = [1, 2]")
                                 .Attr("f: float = 0.5")
                                 .Build();
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(*ok->FindAttr("s")->default_value->get_if<TensorShape>(),
            TensorShape({2, kUnknownDim}));
  EXPECT_EQ(*ok->FindAttr("l")->default_value->get_if<std::vector<int64_t>>(),
            (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(*ok->FindAttr("f")->default_value->get_if<float>(), 0.5f);
}

}  // namespace
}  // namespace sluice
