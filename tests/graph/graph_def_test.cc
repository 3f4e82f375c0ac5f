#include "graph/graph_def.h"

#include "google/protobuf/util/message_differencer.h"
#include "graph/scope.h"
#include "gtest/gtest.h"
#include "tests/graph/test_ops.h"

namespace sluice {
namespace {

using test::TestOpRegistry;

::testing::AssertionResult Has(const absl::Status& s, absl::string_view text) {
  if (!s.ok() && s.message().find(text) != absl::string_view::npos) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "got " << s;
}

proto::NodeDef* AddConst(proto::GraphDef* def, const std::string& name, float v) {
  proto::NodeDef* n = def->add_node();
  n->set_name(name);
  n->set_op("Const");
  AttrValueToProto(AttrValue(Tensor::Scalar<float>(v)), &(*n->mutable_attr())["value"]);
  AttrValueToProto(AttrValue(DType::kFloat32), &(*n->mutable_attr())["dtype"]);
  return n;
}

proto::NodeDef* AddAdd(proto::GraphDef* def, const std::string& name, const std::string& x,
                       const std::string& y) {
  proto::NodeDef* n = def->add_node();
  n->set_name(name);
  n->set_op("Add");
  n->add_input(x);
  n->add_input(y);
  return n;
}

TEST(GraphDefTest, RoundTripPreservesNodesEdgesAttrsAndDevices) {
  Scope root = Scope::NewRootScope(TestOpRegistry());
  const Node* a = root.WithOpName("a")
                      .WithDevice("/job:worker/task:1")
                      .AddNode("Const", {},
                               {{"value", AttrValue(Tensor::FromVector<float>({1, 2}))},
                                {"dtype", AttrValue(DType::kFloat32)}},
                               SourceLocation::Current());
  const Node* b = root.WithOpName("b").AddNode("Add", {Output(a, 0), Output(a, 0)}, {},
                                               SourceLocation::Current());
  const Node* after = root.WithOpName("after")
                          .WithControlDependencies({Output(b, 0)})
                          .AddNode("NoOp", {}, {}, SourceLocation::Current());
  ASSERT_TRUE(root.ok()) << root.status();
  ASSERT_NE(after, nullptr);
  proto::GraphDef def;
  ToGraphDef(*root.graph(), &def);
  absl::StatusOr<std::unique_ptr<Graph>> back = GraphFromGraphDef(def, TestOpRegistry());
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ((*back)->num_nodes(), 3);
  const Node* b2 = (*back)->FindNode("b");
  EXPECT_EQ(b2->input(0).node->name(), "a");
  EXPECT_EQ((*back)->FindNode("a")->requested_device(), "/job:worker/task:1");
  EXPECT_EQ((*back)->FindNode("after")->control_inputs()[0], b2);
  EXPECT_TRUE((*back)->FindNode("a")->attrs().at("value") == a->attrs().at("value"));
  proto::GraphDef again;
  ToGraphDef(**back, &again);
  // Attribute maps serialise in no fixed order: compare messages, not bytes.
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(again, def));
}

TEST(GraphDefTest, ImportAcceptsNodesInAnyOrder) {
  proto::GraphDef def;
  AddAdd(&def, "sum", "a", "b:0");
  AddConst(&def, "b", 2);
  AddConst(&def, "a", 1);
  absl::StatusOr<std::unique_ptr<Graph>> g = GraphFromGraphDef(def, TestOpRegistry());
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ((*g)->FindNode("sum")->output_type(0), DType::kFloat32);
}

TEST(GraphDefTest, EveryBadInputNamesTheNode) {
  {
    proto::GraphDef def;
    AddConst(&def, std::string(5000, 'x'), 1);
    EXPECT_TRUE(Has(
        GraphFromGraphDef(def, TestOpRegistry()).status(),
        "node name '" + std::string(64, 'x') + "...' is 5000 bytes long, over the limit of 1024"));
  }
  {
    proto::GraphDef def;
    def.add_node()->set_name("x");
    def.mutable_node(0)->set_op("Frobnicate");
    EXPECT_TRUE(Has(GraphFromGraphDef(def, TestOpRegistry()).status(),
                    "node 'x' (Frobnicate): unknown op 'Frobnicate'"));
  }
  {
    proto::GraphDef def;
    AddConst(&def, "a", 1);
    AddAdd(&def, "sum", "a", "missing");
    EXPECT_TRUE(Has(GraphFromGraphDef(def, TestOpRegistry()).status(),
                    "node 'sum' (Add): input 'missing' refers to unknown node 'missing'"));
  }
  {
    proto::GraphDef def;
    AddConst(&def, "a", 1);
    AddAdd(&def, "sum", "a", "a:5");
    EXPECT_TRUE(
        Has(GraphFromGraphDef(def, TestOpRegistry()).status(),
            "node 'sum' (Add): input 'a:5' names output 5 but node 'a' (Const) has 1 outputs"));
  }
  {
    proto::GraphDef def;
    AddConst(&def, "a", 1);
    AddAdd(&def, "sum", "a", "a:x");
    EXPECT_TRUE(Has(GraphFromGraphDef(def, TestOpRegistry()).status(),
                    "node 'sum' (Add): malformed input 'a:x'"));
  }
  {
    proto::GraphDef def;
    AddConst(&def, "a", 1);
    proto::NodeDef* d = def.add_node();
    d->set_name("d");
    d->set_op("Const");
    AttrValueToProto(AttrValue(Tensor::Scalar<double>(1)), &(*d->mutable_attr())["value"]);
    AttrValueToProto(AttrValue(DType::kFloat64), &(*d->mutable_attr())["dtype"]);
    AddAdd(&def, "mixed", "a", "d");
    EXPECT_TRUE(Has(GraphFromGraphDef(def, TestOpRegistry()).status(),
                    "node 'mixed' (Add): input 1 ('y' from d:0) has dtype float64 but attribute T "
                    "is float32"));
  }
  {
    proto::GraphDef def;
    AddAdd(&def, "p", "a", "q");
    AddAdd(&def, "q", "p", "a");
    AddConst(&def, "a", 1);
    EXPECT_TRUE(Has(GraphFromGraphDef(def, TestOpRegistry()).status(),
                    "graph has a cycle through node 'p'"));
  }
  {
    proto::GraphDef def;
    AddConst(&def, "a", 1);
    AddConst(&def, "a", 2);
    EXPECT_TRUE(Has(GraphFromGraphDef(def, TestOpRegistry()).status(),
                    "node 'a' (Const): duplicate node name 'a'"));
  }
  {
    proto::GraphDef def;
    proto::NodeDef* c = AddConst(&def, "c", 1);
    (*c->mutable_attr())["dtype"].set_i(3);  // An int where a dtype belongs.
    EXPECT_TRUE(Has(GraphFromGraphDef(def, TestOpRegistry()).status(),
                    "node 'c' (Const): attribute 'dtype' must be a type, got a int"));
  }
  {
    proto::GraphDef def;
    proto::NodeDef* c = AddConst(&def, "c", 1);
    (*c->mutable_attr())["value"].mutable_tensor()->set_content("xy");
    EXPECT_TRUE(
        Has(GraphFromGraphDef(def, TestOpRegistry()).status(),
            "node 'c' (Const): attribute 'value': tensor proto of float32[] needs 4 bytes"));
  }
  {
    proto::GraphDef def;
    def.set_version(kGraphDefVersion + 1);
    EXPECT_TRUE(Has(GraphFromGraphDef(def, TestOpRegistry()).status(), "is newer than"));
  }
}

}  // namespace
}  // namespace sluice
