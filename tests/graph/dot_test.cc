#include "graph/dot.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "ops/all_ops.h"

namespace sluice {
namespace {

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

TEST(DotTest, ColoursByDeviceAndDrawsOneEdgePerTransfer) {
  Scope root = ops::NewRootScope();
  Output x = ops::Placeholder(root.WithOpName("x"), DType::kFloat32, TensorShape({64, 1024}));
  Output a = ops::Relu(root.WithOpName("a"), x);    // Device 1: x crosses once...
  Output b = ops::Neg(root.WithOpName("b"), x);     // ...for both a and b.
  Output c = ops::Square(root.WithOpName("c"), x);  // Device 0: same device as x.
  ops::Add(root.WithOpName("d").WithControlDependencies({c}), a, b);
  auto graph = *root.Finalize();
  Placement p;
  p.devices = {"/job:localhost/task:0/device:cpu:0", "/job:localhost/task:0/device:cpu:1"};
  p.device_of = {0, 1, 1, 0, 1};
  std::string dot = PlacedGraphToDot(*graph, p, {.title = "demo \"1\""});
  EXPECT_TRUE(absl::StartsWith(dot, "digraph \"demo \\\"1\\\"\" {\n")) << dot;  // Escaped.
  EXPECT_TRUE(absl::EndsWith(dot, "}\n"));
  // One cluster per device, labelled with its name; nodes filled with its colour.
  EXPECT_EQ(Count(dot, "subgraph cluster_"), 2);
  EXPECT_NE(dot.find("label=\"/job:localhost/task:0/device:cpu:1\""), std::string::npos);
  EXPECT_NE(dot.find("n0 [label=\"x\\nPlaceholder\", fillcolor=\"#a6cee3\"]"), std::string::npos)
      << dot;
  EXPECT_NE(dot.find("n1 [label=\"a\\nRelu\", fillcolor=\"#b2df8a\"]"), std::string::npos);
  // x -> {a, b} on device 1 is one transfer: one labelled edge into a junction, then a fan-out.
  EXPECT_EQ(Count(dot, "label=\"float32 [64,1024]\\n256 KiB\""), 1) << dot;
  EXPECT_NE(dot.find("n0 -> x0_0_d1 ["), std::string::npos) << dot;
  EXPECT_NE(dot.find("x0_0_d1 -> n1"), std::string::npos);
  EXPECT_NE(dot.find("x0_0_d1 -> n2"), std::string::npos);
  EXPECT_NE(dot.find("n0 -> n3;"), std::string::npos);  // Same device: a plain edge.
  // The control edge c -> d crosses devices: dashed, labelled "control".
  EXPECT_NE(dot.find("n3 -> n4 [color=\"#c0392b\", fontcolor=\"#c0392b\", penwidth=2, "
                     "style=dashed, label=\"control\"]"),
            std::string::npos)
      << dot;
  EXPECT_EQ(Count(dot, "penwidth=2"), 2);  // Exactly the two transfers.
  DotOptions no_control;
  no_control.show_control_edges = false;
  EXPECT_EQ(Count(PlacedGraphToDot(*graph, p, no_control), "penwidth=2"), 1);
}

TEST(DotTest, FormatsBytes) {
  EXPECT_EQ(FormatBytes(12), "12 B");
  EXPECT_EQ(FormatBytes(4096), "4 KiB");
  EXPECT_EQ(FormatBytes(1.5 * 1024 * 1024), "1.5 MiB");
  EXPECT_EQ(FormatBytes(3.0 * 1024 * 1024 * 1024), "3 GiB");
}

}  // namespace
}  // namespace sluice
