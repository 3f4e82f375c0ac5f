#include "graph/placer.h"

#include "graph/shape_inference.h"
#include "gtest/gtest.h"
#include "ops/all_ops.h"
#include "ops/op_builder.h"
#include "ops/register.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

using test::Filled;
using test::StatusHas;

const std::vector<std::string> kTwo = {"/job:localhost/task:0/device:cpu:0",
                                       "/job:localhost/task:0/device:cpu:1"};
const std::vector<std::string> kCluster = {
    "/job:worker/task:0/device:cpu:0", "/job:worker/task:1/device:cpu:0",
    "/job:ps/task:0/device:cpu:0", "/job:ps/task:0/device:cpu:1"};

TEST(PlacerTest, HonoursFullAndPartialRequests) {
  Scope root = ops::NewRootScope();
  Output a = ops::Const(root.WithOpName("a").WithDevice("/job:ps/task:0/device:cpu:1"),
                        Tensor::Scalar<float>(1.0f));
  Output b = ops::Const(root.WithOpName("b").WithDevice("/job:worker/task:1"),
                        Tensor::Scalar<float>(2.0f));
  Output c = ops::Add(root.WithOpName("c").WithDevice("/job:ps/CPU:0"), a, b);
  Output d = ops::Neg(root.WithOpName("d").WithDevice("/task:1/job:worker/device:cpu:0"), c);
  auto graph = *root.Finalize();
  absl::StatusOr<Placement> p = PlaceGraph(*graph, kCluster);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->DeviceOf(a.node()), "/job:ps/task:0/device:cpu:1");
  EXPECT_EQ(p->DeviceOf(b.node()), "/job:worker/task:1/device:cpu:0");
  EXPECT_EQ(p->DeviceOf(c.node()), "/job:ps/task:0/device:cpu:0");
  EXPECT_EQ(p->DeviceOf(d.node()), "/job:worker/task:1/device:cpu:0");
  EXPECT_EQ(p->devices, kCluster);
}

TEST(PlacerTest, ColocatesVariablesWithTheOpsThatUpdateThem) {
  Scope root = ops::NewRootScope();
  Output w = ops::Variable(root.WithOpName("w").WithDevice("/device:cpu:1"), TensorShape({2}),
                           DType::kFloat32);
  // Unannotated updates and their write handles follow the variable.
  ops::Assign(root.WithOpName("init"), w, Tensor::FromVector<float>({1, 2}));
  ops::AssignAdd(root.WithOpName("bump"), w, Tensor::FromVector<float>({1, 1}));
  ops::Neg(root.WithOpName("read"), w);
  auto graph = *root.Finalize();
  for (bool balance : {true, false}) {
    PlacerOptions opts;
    opts.auto_balance = balance;
    absl::StatusOr<Placement> p = PlaceGraph(*graph, kTwo, opts);
    ASSERT_TRUE(p.ok()) << p.status();
    int colocated = 0;
    for (const Node* n : graph->nodes()) {
      if (n->op() == "Variable" || n->op() == "Assign" || n->op() == "AssignAdd") {
        EXPECT_EQ(p->DeviceIndexOf(n), 1) << n->name();
        ++colocated;
      }
    }
    EXPECT_EQ(colocated, 5);  // w, two write handles, init, bump.
  }
  // Updates that request a device pull the variable along.
  Scope r2 = ops::NewRootScope();
  Output v = ops::Variable(r2.WithOpName("v"), TensorShape({2}), DType::kFloat32);
  ops::Assign(r2.WithOpName("set").WithDevice("/device:cpu:1"), v,
              Tensor::FromVector<float>({1, 2}));
  auto g2 = *r2.Finalize();
  absl::StatusOr<Placement> p2 = PlaceGraph(*g2, kTwo);
  ASSERT_TRUE(p2.ok()) << p2.status();
  EXPECT_EQ(p2->DeviceIndexOf(v.node()), 1);
}

// An updater whose name, argument name and input position give no hint: only its OpDef's
// "Ref(T)" says it updates the variable in place.
void RegisterNudgeOnce() {
  static const absl::Status registered = [] {
    RegisterAllOps();
    return OpRegistry::Global()->Register(OpDefBuilder("TestNudge")
                                              .Input("delta: T")
                                              .Input("target: Ref(T)")
                                              .Output("out: T")
                                              .Attr("T: type")
                                              .SetIsStateful()
                                              .SetShapeFn(UnchangedShape));
  }();
  ASSERT_TRUE(registered.ok()) << registered;
}

TEST(PlacerTest, RefInputsDeclaredInTheOpDefColocateWhateverTheirNames) {
  RegisterNudgeOnce();
  Scope root = ops::NewRootScope();
  Output v = ops::Variable(root.WithOpName("v").WithDevice("/device:cpu:1"), TensorShape({256}),
                           DType::kFloat32);
  // A large delta made on cpu:0 would pull a free consumer there; the reference must win.
  Output delta = ops::Neg(root.WithOpName("delta").WithDevice("/device:cpu:0"),
                          ops::Const(root, Filled(TensorShape({256}), 1.0f)));
  Output nudge = ops::BuildOp(root.WithOpName("nudge"), "TestNudge", {delta, v}, {}, {});
  ops::Neg(root.WithOpName("read"), v);  // The variable node is also read, not only a handle.
  auto graph = *root.Finalize();
  EXPECT_FALSE(nudge.node()->IsRefInput(0));
  EXPECT_TRUE(nudge.node()->IsRefInput(1));
  for (bool balance : {true, false}) {
    PlacerOptions opts;
    opts.auto_balance = balance;
    absl::StatusOr<Placement> p = PlaceGraph(*graph, kTwo, opts);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(p->DeviceIndexOf(nudge.node()), 1);
  }
}

TEST(PlacerTest, RefSpecsAreParsedAndChecked) {
  absl::StatusOr<OpDef> def =
      OpDefBuilder("X").Input("a: Ref(T)").Input("b: T").Attr("T: type").Build();
  ASSERT_TRUE(def.ok()) << def.status();
  EXPECT_TRUE(def->inputs[0].is_ref);
  EXPECT_EQ(def->inputs[0].type_attr, "T");
  EXPECT_FALSE(def->inputs[1].is_ref);
  EXPECT_TRUE(StatusHas(OpDefBuilder("X").Input("a: Ref(T").Attr("T: type").Build().status(),
                        absl::StatusCode::kInvalidArgument,
                        "op X: cannot parse spec 'a: Ref(T': unterminated 'Ref('"));
  EXPECT_TRUE(StatusHas(OpDefBuilder("X").Output("a: Ref(T)").Attr("T: type").Build().status(),
                        absl::StatusCode::kInvalidArgument,
                        "op X: cannot parse spec 'a: Ref(T)': an output cannot be a Ref"));
  EXPECT_TRUE(StatusHas(OpDefBuilder("X").Input("a: Ref(N * T)").Attr("T: type").Build().status(),
                        absl::StatusCode::kInvalidArgument, "a reference cannot be a list"));
}

TEST(PlacerTest, ConflictingColocatedRequestsNameTheChain) {
  Scope root = ops::NewRootScope();
  Output w = ops::Variable(root.WithOpName("w").WithDevice("/device:cpu:0"), TensorShape({2}),
                           DType::kFloat32);
  ops::Assign(root.WithOpName("init").WithDevice("/device:cpu:1"), w,
              Tensor::FromVector<float>({1, 2}));
  auto graph = *root.Finalize();
  EXPECT_TRUE(StatusHas(
      PlaceGraph(*graph, kTwo).status(), absl::StatusCode::kInvalidArgument,
      "cannot satisfy the device requests of colocated nodes: node 'init' (Assign) requests "
      "'/device:cpu:1' but node 'w' (Variable) requests '/device:cpu:0', and they must share a "
      "device because node 'w' (Variable) and node 'w_ref/Variable' (Variable) hold the same "
      "variable 'w', and node 'w_ref/Variable' (Variable) is the variable that node 'init' "
      "(Assign) updates in place (input 0)"));
}

TEST(PlacerTest, UnsatisfiableRequestsFailUnlessSoftPlacement) {
  Scope root = ops::NewRootScope();
  Output x = ops::Const(root.WithOpName("x").WithDevice("/job:ps"), Tensor::Scalar<float>(1.0f));
  Output y = ops::Neg(root.WithOpName("y").WithDevice("/device:cpu:7"), x);
  auto graph = *root.Finalize();
  EXPECT_TRUE(
      StatusHas(PlaceGraph(*graph, kTwo).status(), absl::StatusCode::kInvalidArgument,
                "cannot place node 'x' (Const): no device matches '/job:ps'; the devices are "
                "/job:localhost/task:0/device:cpu:0, /job:localhost/task:0/device:cpu:1 "
                "(allow_soft_placement would fall back to a matching one)"));
  PlacerOptions soft;
  soft.allow_soft_placement = true;
  absl::StatusOr<Placement> p = PlaceGraph(*graph, kTwo, soft);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_GE(p->DeviceIndexOf(x.node()), 0);
  EXPECT_GE(p->DeviceIndexOf(y.node()), 0);
  // Soft placement relaxes only what it must: the id of /job:ps/task:0/device:cpu:5, keeping
  // job and task.
  Scope r2 = ops::NewRootScope();
  Output z = ops::Const(r2.WithOpName("z").WithDevice("/job:ps/task:0/device:cpu:5"),
                        Tensor::Scalar<float>(1.0f));
  auto g2 = *r2.Finalize();
  absl::StatusOr<Placement> p2 = PlaceGraph(*g2, kCluster, soft);
  ASSERT_TRUE(p2.ok()) << p2.status();
  EXPECT_EQ(p2->DeviceOf(z.node()).substr(0, 15), "/job:ps/task:0/");
}

TEST(PlacerTest, MergedUnsatisfiableRequestsListTheGroup) {
  Scope root = ops::NewRootScope();
  Output w =
      ops::Variable(root.WithOpName("w").WithDevice("/job:ps"), TensorShape({2}), DType::kFloat32);
  ops::Assign(root.WithOpName("init").WithDevice("/device:cpu:1"), w,
              Tensor::FromVector<float>({1, 2}));
  auto graph = *root.Finalize();
  EXPECT_TRUE(StatusHas(
      PlaceGraph(*graph, kTwo).status(), absl::StatusCode::kInvalidArgument,
      "cannot place node 'w' (Variable): no device matches '/job:ps/device:cpu:1' (merged from "
      "its colocation group: node 'w' (Variable) requests '/job:ps', node 'w_ref/Variable' "
      "(Variable) requests '/job:ps', node 'init' (Assign) requests '/device:cpu:1')"));
}

TEST(PlacerTest, BadRequestsAndDeviceListsAreRejected) {
  Scope root = ops::NewRootScope();
  ops::Const(root.WithOpName("x").WithDevice("cpu:0"), Tensor::Scalar<float>(1.0f));
  auto graph = *root.Finalize();
  EXPECT_TRUE(StatusHas(PlaceGraph(*graph, kTwo).status(), absl::StatusCode::kInvalidArgument,
                        "node 'x' (Const): invalid device name 'cpu:0': must start with '/'"));
  Scope r2 = ops::NewRootScope();
  ops::Const(r2.WithOpName("x"), Tensor::Scalar<float>(1.0f));
  auto g2 = *r2.Finalize();
  EXPECT_TRUE(StatusHas(PlaceGraph(*g2, {"/job:a/device:cpu:0"}).status(),
                        absl::StatusCode::kInvalidArgument,
                        "device '/job:a/device:cpu:0' is not a full device name"));
  EXPECT_TRUE(StatusHas(PlaceGraph(*g2, {kTwo[0], "/job:localhost/task:0/CPU:0"}).status(),
                        absl::StatusCode::kInvalidArgument,
                        "device '/job:localhost/task:0/device:cpu:0' is listed twice"));
  EXPECT_TRUE(StatusHas(PlaceGraph(*g2, {}).status(), absl::StatusCode::kInvalidArgument,
                        "needs at least one device"));
  PlacerOptions opts;
  opts.colocate = {{"x", "ghost"}};
  EXPECT_TRUE(StatusHas(PlaceGraph(*g2, kTwo, opts).status(), absl::StatusCode::kInvalidArgument,
                        "PlacerOptions::colocate names node 'ghost', which is not in the graph"));
}

// A private registry whose ops declare the "_class" colocation attribute.
const OpRegistry* ClassRegistry() {
  static OpRegistry* r = [] {
    auto* reg = new OpRegistry;
    (void)reg->Register(OpDefBuilder("Src")
                            .Output("y: float32")
                            .Attr("_class: string = \"\"")
                            .SetShapeFn(ScalarShape));
    (void)reg->Register(OpDefBuilder("Sink")
                            .Input("x: float32")
                            .Output("y: float32")
                            .Attr("_class: string = \"\"")
                            .SetShapeFn(ScalarShape));
    return reg;
  }();
  return r;
}

TEST(PlacerTest, ClassAttributeAndOptionGroupsColocate) {
  Graph g(ClassRegistry());
  Node* a = *g.AddNode({.name = "a", .op = "Src", .device = "/device:cpu:1"});
  Node* b = *g.AddNode(
      {.name = "b", .op = "Sink", .inputs = {{a, 0}}, .attrs = {{"_class", AttrValue("loc:@c")}}});
  Node* c = *g.AddNode({.name = "c", .op = "Src", .attrs = {{"_class", AttrValue("loc:@a")}}});
  Node* d = *g.AddNode({.name = "d", .op = "Src"});
  *g.AddNode({.name = "e", .op = "Src", .device = "/device:cpu:0"});
  ASSERT_TRUE(g.Finalize().ok());
  PlacerOptions opts;
  opts.colocate = {{"e", "d"}};
  absl::StatusOr<Placement> p = PlaceGraph(g, kTwo, opts);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->DeviceIndexOf(b), 1);  // b -> c -> a.
  EXPECT_EQ(p->DeviceIndexOf(c), 1);
  EXPECT_EQ(p->DeviceIndexOf(d), 0);  // d -> e.

  Graph bad(ClassRegistry());
  *bad.AddNode({.name = "x", .op = "Src", .attrs = {{"_class", AttrValue("loc:@nobody")}}});
  ASSERT_TRUE(bad.Finalize().ok());
  EXPECT_TRUE(StatusHas(PlaceGraph(bad, kTwo).status(), absl::StatusCode::kInvalidArgument,
                        "node 'x' (Src): attribute _class names node 'nobody', which is not in "
                        "the graph"));
  Graph conflict(ClassRegistry());
  *conflict.AddNode({.name = "p", .op = "Src", .device = "/device:cpu:0"});
  *conflict.AddNode({.name = "q",
                     .op = "Src",
                     .attrs = {{"_class", AttrValue("loc:@p")}},
                     .device = "/device:cpu:1"});
  ASSERT_TRUE(conflict.Finalize().ok());
  EXPECT_TRUE(StatusHas(PlaceGraph(conflict, kTwo).status(), absl::StatusCode::kInvalidArgument,
                        "node 'q' (Src) requests '/device:cpu:1' but node 'p' (Src) requests "
                        "'/device:cpu:0', and they must share a device because node 'q' (Src) "
                        "asks to be colocated with node 'p' (Src) (_class loc:@p)"));
}

TEST(PlacerTest, CostEstimatesFollowShapes) {
  Scope root = ops::NewRootScope();
  Output a = ops::Placeholder(root.WithOpName("a"), DType::kFloat32, TensorShape({-1, 128}));
  Output b = ops::Const(root.WithOpName("b"), Filled(TensorShape({128, 32}), 1));
  Output m = ops::MatMul(root.WithOpName("m"), a, b);
  Output e = ops::Exp(root.WithOpName("e"), m);
  auto graph = *root.Finalize();
  NodeCost mc = EstimateNodeCost(*m.node(), /*assumed_unknown_dim=*/64);
  EXPECT_EQ(mc.flops, 2.0 * 64 * 128 * 32);
  EXPECT_EQ(mc.bytes, 4.0 * (64 * 128 + 128 * 32 + 64 * 32));
  NodeCost ec = EstimateNodeCost(*e.node(), 64);
  EXPECT_EQ(ec.flops, 5.0 * 64 * 32);
  EXPECT_EQ(EstimateNodeCost(*b.node(), 64).flops, 0);
  EXPECT_EQ(EstimateOutputBytes(*a.node(), 0, 10), 4.0 * 10 * 128);
}

// Two heavy independent branches joined at the end: the balanced placement puts one branch on
// each device (each with its weights) and crosses devices only at the ends.
TEST(PlacerTest, AutomaticPlacementBalancesComputeAndKeepsTransfersSmall) {
  Scope root = ops::NewRootScope();
  Output x = ops::Placeholder(root.WithOpName("x"), DType::kFloat32, TensorShape({64, 256}));
  std::vector<std::vector<Output>> branches(2);
  Output outs[2];
  for (int b = 0; b < 2; ++b) {
    Scope s = root.NewSubScope(absl::StrCat("branch", b));
    Output h = x;
    for (int layer = 0; layer < 3; ++layer) {
      Output w = ops::Const(s.WithOpName(absl::StrCat("w", layer)),
                            Filled(TensorShape({256, 256}), 0.01f));
      Output m = ops::MatMul(s, h, w);
      h = ops::Relu(s, m);
      branches[b].insert(branches[b].end(), {w, m, h});
    }
    outs[b] = h;
  }
  ops::Add(root.WithOpName("y"), outs[0], outs[1]);
  auto graph = *root.Finalize();
  absl::StatusOr<Placement> p = PlaceGraph(*graph, kTwo);
  ASSERT_TRUE(p.ok()) << p.status();
  int dev[2];
  for (int b = 0; b < 2; ++b) {
    dev[b] = p->DeviceIndexOf(branches[b][0].node());
    for (const Output& o : branches[b]) EXPECT_EQ(p->DeviceIndexOf(o.node()), dev[b]) << o.name();
  }
  EXPECT_NE(dev[0], dev[1]);
  PlacementCost cost = EvaluatePlacement(*graph, *p);
  EXPECT_EQ(cost.num_transfers, 2);  // x to one branch, one branch's result to y.
  EXPECT_EQ(cost.transfer_bytes, 2.0 * 64 * 256 * 4);
  Placement all_on_one = *p;
  all_on_one.device_of.assign(graph->num_nodes(), 0);
  PlacementCost single = EvaluatePlacement(*graph, all_on_one);
  EXPECT_EQ(single.num_transfers, 0);
  EXPECT_LT(cost.makespan_ns, 0.6 * single.makespan_ns);
  // Deterministic.
  EXPECT_EQ(PlaceGraph(*graph, kTwo)->device_of, p->device_of);
  // Without balancing, free nodes go to the first device.
  PlacerOptions first;
  first.auto_balance = false;
  EXPECT_EQ(PlaceGraph(*graph, kTwo, first)->device_of, all_on_one.device_of);
}

TEST(PlacerTest, CheapChainsStayOnOneDevice) {
  Scope root = ops::NewRootScope();
  Output h = ops::Placeholder(root.WithOpName("x"), DType::kFloat32, TensorShape({8}));
  for (int i = 0; i < 12; ++i) h = ops::Square(root, ops::Neg(root, h));
  auto graph = *root.Finalize();
  absl::StatusOr<Placement> p = PlaceGraph(*graph, kCluster);
  ASSERT_TRUE(p.ok()) << p.status();
  for (const Node* n : graph->nodes()) EXPECT_EQ(p->DeviceIndexOf(n), p->device_of[0]) << n->name();
  EXPECT_EQ(EvaluatePlacement(*graph, *p).num_transfers, 0);
}

TEST(PlacerTest, ApplyPlacementRecordsAssignedDevices) {
  Graph g;
  RegisterAllOps();
  Node* c = *g.AddNode({.name = "c",
                        .op = "Const",
                        .attrs = {{"value", AttrValue(Tensor::Scalar<float>(1))},
                                  {"dtype", AttrValue(DType::kFloat32)}},
                        .device = "/device:cpu:1"});
  absl::StatusOr<Placement> p = PlaceGraph(g, kTwo);
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(ApplyPlacement(*p, &g).ok());
  EXPECT_EQ(c->assigned_device(), kTwo[1]);
}

}  // namespace
}  // namespace sluice
