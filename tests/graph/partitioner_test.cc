#include "graph/partitioner.h"

#include <map>
#include <random>
#include <set>
#include <tuple>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "ops/all_ops.h"
#include "runtime/exec/executor.h"
#include "runtime/exec/graph_runner.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

using test::StatusHas;

// Four devices shared by every test (thread pools are costly to make 200 times).
std::vector<CpuDevice*> Devices(int n) {
  static std::vector<std::unique_ptr<CpuDevice>>* devices = [] {
    auto* d = new std::vector<std::unique_ptr<CpuDevice>>;
    for (int i = 0; i < 4; ++i) {
      DeviceOptions opts;
      opts.name = absl::StrCat("/job:localhost/task:0/device:cpu:", i);
      opts.inter_op_threads = 2;
      opts.intra_op_threads = 1;
      d->push_back(std::make_unique<CpuDevice>(opts));
    }
    return d;
  }();
  std::vector<CpuDevice*> out;
  for (int i = 0; i < n; ++i) out.push_back((*devices)[i].get());
  return out;
}

Placement PlacementOver(int num_devices, const Graph& graph, std::vector<int> device_of) {
  Placement p;
  for (int i = 0; i < num_devices; ++i) {
    p.devices.push_back(absl::StrCat("/job:localhost/task:0/device:cpu:", i));
  }
  p.device_of = std::move(device_of);
  p.device_of.resize(graph.num_nodes(), 0);
  return p;
}

// A random graph of float32 and int64 [3,3] tensors: elementwise ops, MatMul, reductions with
// broadcasting, casts, Split/Concat (multi-output nodes), random control dependencies, fed
// placeholders and sometimes a fed intermediate node, several fetches and a NoOp target.
struct RandomGraph {
  std::shared_ptr<const Graph> graph;
  std::vector<Endpoint> feeds;
  std::vector<Tensor> feed_values;
  std::vector<Endpoint> fetches;
  std::vector<const Node*> targets;
};

RandomGraph BuildRandomGraph(uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  auto value = [&](DType dtype) {
    Tensor t(dtype, TensorShape({3, 3}));
    for (int i = 0; i < 9; ++i) {
      int v = pick(7) - 3;
      if (dtype == DType::kFloat32) {
        t.data<float>()[i] = v * 0.5f;
      } else {
        t.data<int64_t>()[i] = v;
      }
    }
    return t;
  };
  Scope root = ops::NewRootScope();
  RandomGraph out;
  std::vector<Output> floats, ints, all;
  auto add = [&](Output o) {
    (o.dtype() == DType::kFloat32 ? floats : ints).push_back(o);
    all.push_back(o);
  };
  for (int i = 0, n = 2 + pick(3); i < n; ++i) add(ops::Const(root, value(DType::kFloat32)));
  for (int i = 0, n = 1 + pick(2); i < n; ++i) add(ops::Const(root, value(DType::kInt64)));
  for (DType dt : {DType::kFloat32, DType::kInt64}) {
    Output p = ops::Placeholder(root, dt, TensorShape({3, 3}));
    out.feeds.push_back(p.endpoint());
    out.feed_values.push_back(value(dt));
    add(p);
  }
  auto f = [&] { return floats[pick(floats.size())]; };
  auto i64 = [&] { return ints[pick(ints.size())]; };
  const int num_ops = 15 + pick(26);
  for (int k = 0; k < num_ops; ++k) {
    Scope s = root;
    if (pick(5) == 0) s = s.WithControlDependencies({all[pick(all.size())]});
    switch (pick(9)) {
      case 0: {
        Output a = f(), b = f();
        switch (pick(5)) {
          case 0:
            add(ops::Add(s, a, b));
            break;
          case 1:
            add(ops::Sub(s, a, b));
            break;
          case 2:
            add(ops::Mul(s, a, b));
            break;
          case 3:
            add(ops::Maximum(s, a, b));
            break;
          default:
            add(ops::Minimum(s, a, b));
            break;
        }
        break;
      }
      case 1:
        add(pick(2) ? ops::Neg(s, f()) : ops::Identity(s, f()));
        break;
      case 2:
        add(ops::Mul(s, ops::MatMul(s, f(), f(), pick(2), pick(2)), 0.25f));
        break;
      case 3:
        add(ops::Add(s, ops::ReduceSum(s, f(), {int64_t{1}}, /*keep_dims=*/true), f()));
        break;
      case 4: {
        Output a = i64(), b = i64();
        switch (pick(4)) {
          case 0:
            add(ops::Add(s, a, b));
            break;
          case 1:
            add(ops::Sub(s, a, b));
            break;
          case 2:
            add(ops::Maximum(s, a, b));
            break;
          default:
            add(ops::Minimum(s, a, b));
            break;
        }
        break;
      }
      case 5:
        add(pick(2) ? ops::Neg(s, i64()) : ops::Identity(s, i64()));
        break;
      case 6:
        add(ops::Cast(s, f(), DType::kInt64));
        break;
      case 7:
        add(ops::Cast(s, i64(), DType::kFloat32));
        break;
      default: {
        std::vector<Output> parts = ops::Split(s, 1, f(), 3);
        std::shuffle(parts.begin(), parts.end(), rng);
        add(ops::Concat(s, parts, 1));
        break;
      }
    }
  }
  EXPECT_TRUE(root.ok()) << root.status();
  // Sometimes feed an intermediate single-output node too: its inputs are then cut off.
  if (pick(3) == 0) {
    Output o = floats[pick(floats.size())];
    if (o.node()->num_outputs() == 1 && o.node()->op() != "Placeholder") {
      out.feeds.push_back(o.endpoint());
      out.feed_values.push_back(value(DType::kFloat32));
    }
  }
  for (int i = 0, n = 1 + pick(4); i < n; ++i)
    out.fetches.push_back(all[pick(all.size())].endpoint());
  out.fetches.push_back(all.back().endpoint());
  if (pick(2)) {
    out.targets.push_back(
        ops::NoOp(root.WithControlDependencies({all[pick(all.size())], all[pick(all.size())]})));
  }
  out.graph = *root.Finalize();
  return out;
}

bool IsHelper(const Node* n) { return n->op() == kSendOp || n->op() == kRecvOp; }

// Checks the structure of a partitioning of all of `rg`'s nodes.
void CheckStructure(const RandomGraph& rg, const Placement& placement,
                    const PartitionedGraph& parts, int seed) {
  const Graph& g = *rg.graph;
  std::set<const Node*> fed;
  for (const Endpoint& e : rg.feeds) fed.insert(e.node);
  // 1. Every node in exactly one partition, its device's.
  std::map<std::string, int> where;
  std::map<int, std::string> device_of_partition;
  for (size_t p = 0; p < parts.partitions.size(); ++p) {
    const GraphPartition& part = parts.partitions[p];
    ASSERT_TRUE(part.graph->finalized());
    device_of_partition[p] = part.device;
    for (const Node* n : part.graph->nodes()) {
      EXPECT_EQ(n->assigned_device(), part.device) << n->name();
      if (IsHelper(n) || (n->op() == "Const" && absl::StrContains(n->name(), "/_ctrl_"))) continue;
      EXPECT_TRUE(where.emplace(n->name(), static_cast<int>(p)).second)
          << "seed " << seed << ": " << n->name() << " is in two partitions";
    }
  }
  for (const Node* n : g.nodes()) {
    ASSERT_TRUE(where.count(n->name())) << "seed " << seed << ": " << n->name() << " is lost";
    EXPECT_EQ(device_of_partition[where[n->name()]], placement.DeviceOf(n)) << n->name();
  }
  EXPECT_EQ(where.size(), static_cast<size_t>(g.num_nodes()));
  // 2. Exactly one Send/Recv pair per (tensor, destination device) and per (control source,
  // destination device) that crosses devices.
  using Key = std::tuple<std::string, std::string, std::string>;  // (edge, from, to)
  std::set<Key> expected;
  for (const Node* n : g.nodes()) {
    if (fed.count(n)) continue;  // Its inputs are cut off.
    for (const Endpoint& in : n->inputs()) {
      if (placement.DeviceOf(in.node) != placement.DeviceOf(n)) {
        expected.emplace(in.DebugString(), placement.DeviceOf(in.node), placement.DeviceOf(n));
      }
    }
    for (const Node* c : n->control_inputs()) {
      if (placement.DeviceOf(c) != placement.DeviceOf(n)) {
        expected.emplace("^" + c->name(), placement.DeviceOf(c), placement.DeviceOf(n));
      }
    }
  }
  std::multiset<Key> sends, recvs;
  for (const GraphPartition& part : parts.partitions) {
    for (const Node* n : part.graph->nodes()) {
      if (!IsHelper(n)) continue;
      auto key = std::make_tuple(*n->GetAttr<std::string>("tensor_name"),
                                 *n->GetAttr<std::string>("send_device"),
                                 *n->GetAttr<std::string>("recv_device"));
      EXPECT_FALSE(*n->GetAttr<bool>("client_terminated"));
      EXPECT_EQ(part.device, n->op() == kSendOp ? std::get<1>(key) : std::get<2>(key));
      (n->op() == kSendOp ? sends : recvs).insert(key);
    }
  }
  EXPECT_EQ(sends.size(), expected.size()) << "seed " << seed;
  EXPECT_EQ(recvs.size(), expected.size()) << "seed " << seed;
  EXPECT_EQ(std::set<Key>(sends.begin(), sends.end()), expected);
  EXPECT_EQ(std::set<Key>(recvs.begin(), recvs.end()), expected);
  EXPECT_EQ(parts.transfers.size(), expected.size());
  // 3. Consumers read crossing tensors from the Recv of that tensor, others from the copy.
  for (const Node* n : g.nodes()) {
    if (fed.count(n)) continue;
    const GraphPartition& part = parts.partitions[where[n->name()]];
    const Node* copy = part.graph->FindNode(n->name());
    ASSERT_NE(copy, nullptr);
    ASSERT_EQ(copy->num_inputs(), n->num_inputs());
    for (int i = 0; i < n->num_inputs(); ++i) {
      const Endpoint& in = n->input(i);
      const Endpoint& got = copy->input(i);
      if (placement.DeviceOf(in.node) == placement.DeviceOf(n)) {
        EXPECT_EQ(got.node->name(), in.node->name());
        EXPECT_EQ(got.index, in.index);
      } else {
        EXPECT_EQ(got.node->op(), kRecvOp);
        EXPECT_EQ(*got.node->GetAttr<std::string>("tensor_name"), in.DebugString());
      }
    }
  }
}

// The property test: random graphs, random placements over 1-4 devices.
TEST(PartitionerPropertyTest, RandomGraphsAndPlacementsPartitionCorrectly) {
  // What the random cases covered, so the test cannot pass by testing nothing.
  int data_transfers = 0, control_transfers = 0, multi_consumer_transfers = 0, fed_cuts = 0;
  for (int seed = 0; seed < 200; ++seed) {
    RandomGraph rg = BuildRandomGraph(seed);
    ASSERT_NE(rg.graph, nullptr);
    const Graph& g = *rg.graph;
    const int k = 1 + seed % 4;
    std::mt19937 rng(seed * 7919 + 1);
    std::vector<int> device_of(g.num_nodes());
    for (int& d : device_of) d = static_cast<int>(rng() % k);
    Placement placement = PlacementOver(k, g, device_of);

    // Structure, over every node.
    PartitionOptions all;
    all.feeds = rg.feeds;
    absl::StatusOr<PartitionedGraph> parts = PartitionGraph(g, placement, all);
    ASSERT_TRUE(parts.ok()) << "seed " << seed << ": " << parts.status();
    CheckStructure(rg, placement, *parts, seed);
    if (HasFatalFailure()) return;
    for (const Transfer& t : parts->transfers) {
      (t.is_control() ? control_transfers : data_transfers)++;
      for (const GraphPartition& part : parts->partitions) {
        if (part.device_index != t.dst_device) continue;
        multi_consumer_transfers += part.graph->FindNode(t.recv_node)->out_edges().size() > 1;
      }
    }
    fed_cuts += rg.feeds.size() > 2;

    // Results: the unpartitioned run on one device is the reference.
    ExecutorParams ref_params{.graph = &g,
                              .device = Devices(1)[0],
                              .feeds = rg.feeds,
                              .fetches = rg.fetches,
                              .targets = rg.targets};
    absl::StatusOr<std::unique_ptr<Executor>> ref = Executor::Create(ref_params);
    ASSERT_TRUE(ref.ok()) << ref.status();
    StepArgs ref_args;
    ref_args.feed_values = rg.feed_values;
    std::vector<Tensor> expected;
    ASSERT_TRUE((*ref)->Run(ref_args, &expected).ok()) << "seed " << seed;

    absl::StatusOr<std::unique_ptr<GraphRunner>> runner =
        GraphRunner::Create(g, placement, Devices(k), rg.feeds, rg.fetches, rg.targets);
    ASSERT_TRUE(runner.ok()) << "seed " << seed << ": " << runner.status();
    for (int step = 0; step < 2; ++step) {  // Twice: kernels and executors are reusable.
      GraphRunner::RunArgs args;
      args.step_id = seed * 10 + step;
      args.feed_values = rg.feed_values;
      std::vector<Tensor> got;
      absl::Status s = (*runner)->Run(std::move(args), &got);
      ASSERT_TRUE(s.ok()) << "seed " << seed << ": " << s;
      ASSERT_EQ(got.size(), expected.size());
      for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_TRUE(test::TensorNear(got[i], expected[i], 1e-5, 1e-5))
            << "seed " << seed << " fetch " << rg.fetches[i].DebugString();
      }
    }
  }
  EXPECT_GT(data_transfers, 1000);
  EXPECT_GT(control_transfers, 50);
  EXPECT_GT(multi_consumer_transfers, 50);
  EXPECT_GT(fed_cuts, 20);
}

TEST(PartitionerTest, OneTransferPerTensorAndDestinationDevice) {
  Scope root = ops::NewRootScope();
  Output x = ops::Const(root.WithOpName("x"), Tensor::FromVector<float>({1, 2, 3}));
  Output a = ops::Neg(root.WithOpName("a"), x);
  ops::Square(root.WithOpName("b"), x);
  Output c = ops::Add(root.WithOpName("c"), x, a);
  ops::Identity(root.WithOpName("d"), x);
  auto graph = *root.Finalize();
  // x on 0; a, b, c on 1; d on 2.
  Placement p = PlacementOver(3, *graph, {0, 1, 1, 1, 2});
  absl::StatusOr<PartitionedGraph> parts = PartitionGraph(*graph, p);
  ASSERT_TRUE(parts.ok()) << parts.status();
  ASSERT_EQ(parts->partitions.size(), 3u);
  ASSERT_EQ(parts->transfers.size(), 2u);
  const Transfer& t = parts->transfers[0];
  EXPECT_EQ(t.tensor_name, "x:0");
  EXPECT_EQ(t.dtype, DType::kFloat32);
  EXPECT_EQ(t.shape, TensorShape({3}));
  const Graph& g1 = *parts->partitions[1].graph;
  const Node* recv = g1.FindNode(t.recv_node);
  ASSERT_NE(recv, nullptr);
  EXPECT_EQ(recv->out_edges().size(), 3u);  // a, b and c (whose other input is a).
  EXPECT_EQ(*recv->GetAttr<std::string>("send_device"), "/job:localhost/task:0/device:cpu:0");
  EXPECT_EQ(*recv->GetAttr<std::string>("recv_device"), "/job:localhost/task:0/device:cpu:1");
  EXPECT_EQ(*recv->GetAttr<TensorShape>("shape"), TensorShape({3}));
  EXPECT_EQ(recv->output_shape(0), TensorShape({3}));
  const Graph& g0 = *parts->partitions[0].graph;
  int sends = 0;
  for (const Node* n : g0.nodes()) sends += n->op() == kSendOp;
  EXPECT_EQ(sends, 2);
  // Where each original output is computed.
  auto loc = parts->Locate(c.endpoint());
  ASSERT_TRUE(loc.ok());
  EXPECT_EQ(loc->first, 1);
  EXPECT_EQ(loc->second.node->name(), "c");
}

TEST(PartitionerTest, ControlEdgesBecomeControlOnlyTransfers) {
  Scope root = ops::NewRootScope();
  Output x = ops::Const(root.WithOpName("x"), Tensor::Scalar<float>(1));
  Output y = ops::Neg(root.WithOpName("y").WithControlDependencies({x}), 2.0f);
  Output z = ops::Neg(root.WithOpName("z").WithControlDependencies({x}), 3.0f);
  auto graph = *root.Finalize();
  std::vector<int> device_of(graph->num_nodes(), 1);
  device_of[x.node()->id()] = 0;
  Placement p = PlacementOver(2, *graph, device_of);
  absl::StatusOr<PartitionedGraph> parts = PartitionGraph(*graph, p);
  ASSERT_TRUE(parts.ok()) << parts.status();
  ASSERT_EQ(parts->transfers.size(), 1u);  // One for both y and z.
  const Transfer& t = parts->transfers[0];
  EXPECT_TRUE(t.is_control());
  EXPECT_EQ(t.tensor_name, "^x");
  const Graph& g1 = *parts->partitions[1].graph;
  const Node* recv = g1.FindNode(t.recv_node);
  const Node* y1 = g1.FindNode("y");
  ASSERT_EQ(y1->control_inputs().size(), 1u);
  EXPECT_EQ(y1->control_inputs()[0], recv);
  // And it runs: y and z wait for x on the other device.
  absl::StatusOr<std::unique_ptr<GraphRunner>> runner =
      GraphRunner::Create(*graph, p, Devices(2), {}, {y.endpoint(), z.endpoint()}, {});
  ASSERT_TRUE(runner.ok()) << runner.status();
  std::vector<Tensor> out;
  ASSERT_TRUE((*runner)->Run({}, &out).ok());
  EXPECT_EQ(out[0].scalar<float>(), -2);
  EXPECT_EQ(out[1].scalar<float>(), -3);
}

TEST(PartitionerTest, FedNodesBecomePlaceholdersAndCutTheirInputs) {
  Scope root = ops::NewRootScope();
  Output a = ops::Const(root.WithOpName("a"), Tensor::Scalar<float>(1));
  Output b = ops::Neg(root.WithOpName("b"), a);
  Output c = ops::Square(root.WithOpName("c"), b);
  std::vector<Output> parts3 =
      ops::Split(root.WithOpName("s"), 0, Tensor::FromVector<float>({1, 2}), 2);
  Output d = ops::Add(root.WithOpName("d"), parts3[0], parts3[1]);
  auto graph = *root.Finalize();
  std::vector<int> device_of(graph->num_nodes(), 0);
  device_of[c.node()->id()] = 1;
  device_of[d.node()->id()] = 1;
  Placement p = PlacementOver(2, *graph, device_of);
  PartitionOptions opts;
  opts.feeds = {b.endpoint(), parts3[0].endpoint(), parts3[1].endpoint()};
  absl::StatusOr<PartitionedGraph> parts = PartitionGraph(*graph, p, opts);
  ASSERT_TRUE(parts.ok()) << parts.status();
  const Graph& g0 = *parts->partitions[0].graph;
  EXPECT_EQ(g0.FindNode("b")->op(), "Placeholder");
  EXPECT_EQ(g0.FindNode("b")->num_inputs(), 0);
  EXPECT_EQ(g0.FindNode("s/_fed_1")->op(), "Placeholder");
  // Partial feeds of a multi-output node that is still read are rejected.
  opts.feeds = {parts3[0].endpoint()};
  EXPECT_TRUE(StatusHas(PartitionGraph(*graph, p, opts).status(),
                        absl::StatusCode::kInvalidArgument,
                        "partitioning: node 's' (Split): output 1 is not fed, but the node is"));
}

TEST(PartitionerTest, RunFailuresAbortEveryPartitionWithTheFirstError) {
  // A placeholder that is not fed fails on device 0 while device 1 waits for a tensor from it.
  Scope root = ops::NewRootScope();
  Output x = ops::Placeholder(root.WithOpName("x"), DType::kFloat32, TensorShape({2}));
  Output y = ops::Neg(root.WithOpName("y"), x);
  Output z =
      ops::Neg(root.WithOpName("z"), ops::Const(root.WithOpName("k"), Tensor::Scalar<float>(1)));
  auto graph = *root.Finalize();
  std::vector<int> device_of(graph->num_nodes(), 0);
  device_of[y.node()->id()] = 1;
  device_of[z.node()->id()] = 1;
  Placement p = PlacementOver(2, *graph, device_of);
  absl::StatusOr<std::unique_ptr<GraphRunner>> runner =
      GraphRunner::Create(*graph, p, Devices(2), {}, {y.endpoint(), z.endpoint()}, {});
  ASSERT_TRUE(runner.ok()) << runner.status();
  for (int i = 0; i < 20; ++i) {
    GraphRunner::RunArgs args;
    args.step_id = i;
    absl::Status s = (*runner)->Run(std::move(args), nullptr);
    EXPECT_TRUE(StatusHas(s, absl::StatusCode::kInvalidArgument,
                          "node 'x' (Placeholder): placeholder 'x' must be fed"))
        << s;
  }
}

}  // namespace
}  // namespace sluice
