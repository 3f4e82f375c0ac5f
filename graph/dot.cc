#include "graph/dot.h"

#include <algorithm>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace sluice {
namespace {

// Pastel fills, one per device (cycled).
constexpr const char* kFills[] = {"#a6cee3", "#b2df8a", "#fdbf6f", "#cab2d6",
                                  "#fb9a99", "#ffff99", "#8dd3c7", "#d9d9d9"};
constexpr char kCrossColor[] = "#c0392b";

std::string Quote(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string NodeId(const Node* n) { return absl::StrCat("n", n->id()); }

std::string TensorLabel(const Node* src, int index) {
  const TensorShape& shape = src->output_shape(index);
  DType dtype = src->output_type(index);
  std::string bytes = shape.IsFullyDefined()
                          ? FormatBytes(static_cast<double>(shape.num_elements()) *
                                        static_cast<double>(DTypeSize(dtype)))
                          : std::string("? bytes");
  return absl::StrCat(DTypeName(dtype), " ", shape.DebugString(), "\n", bytes);
}

}  // namespace

std::string FormatBytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  if (u == 0 || bytes == static_cast<double>(static_cast<int64_t>(bytes))) {
    return absl::StrFormat("%.0f %s", bytes, units[u]);
  }
  return absl::StrFormat("%.1f %s", bytes, units[u]);
}

std::string PlacedGraphToDot(const Graph& graph, const Placement& placement,
                             const DotOptions& options) {
  std::string out = absl::StrCat("digraph ", Quote(options.title), " {\n");
  absl::StrAppend(&out, "  rankdir=TB;\n  compound=true;\n",
                  "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", "
                  "fontsize=10];\n  edge [fontname=\"Helvetica\", fontsize=9];\n");
  const int num_devices = static_cast<int>(placement.devices.size());
  std::vector<std::string> cluster_body(num_devices);
  for (const Node* n : graph.nodes()) {
    int d = placement.DeviceIndexOf(n);
    absl::StrAppend(&cluster_body[d], "    ", NodeId(n),
                    " [label=", Quote(absl::StrCat(n->name(), "\n", n->op())), ", fillcolor=\"",
                    kFills[d % 8], "\"];\n");
  }
  std::string edges;
  for (const Node* src : graph.nodes()) {
    const int from = placement.DeviceIndexOf(src);
    // Cross-device consumers per (output, destination device); -1 stands for control edges.
    std::map<std::pair<int, int>, std::vector<const Node*>> crossing;
    for (const OutEdge& e : src->out_edges()) {
      if (e.is_control() && !options.show_control_edges) continue;
      int to = placement.DeviceIndexOf(e.dst);
      if (to != from) {
        std::vector<const Node*>& dsts = crossing[{e.src_output, to}];
        if (std::find(dsts.begin(), dsts.end(), e.dst) == dsts.end()) dsts.push_back(e.dst);
        continue;
      }
      absl::StrAppend(&edges, "  ", NodeId(src), " -> ", NodeId(e.dst),
                      e.is_control() ? " [style=dashed]" : "", ";\n");
    }
    for (const auto& [key, dsts] : crossing) {
      const auto [output, to] = key;
      std::string style =
          absl::StrCat("color=\"", kCrossColor, "\", fontcolor=\"", kCrossColor, "\", penwidth=2",
                       output < 0 ? ", style=dashed, label=\"control\""
                                  : absl::StrCat(", label=", Quote(TensorLabel(src, output))));
      if (dsts.size() == 1) {
        absl::StrAppend(&edges, "  ", NodeId(src), " -> ", NodeId(dsts[0]), " [", style, "];\n");
        continue;
      }
      std::string junction = absl::StrCat(
          "x", src->id(), "_", output < 0 ? std::string("c") : absl::StrCat(output), "_d", to);
      absl::StrAppend(&cluster_body[to], "    ", junction, " [shape=point, width=0.08, color=\"",
                      kCrossColor, "\"];\n");
      absl::StrAppend(&edges, "  ", NodeId(src), " -> ", junction, " [", style,
                      ", arrowhead=none];\n");
      for (const Node* dst : dsts) {
        absl::StrAppend(&edges, "  ", junction, " -> ", NodeId(dst), " [color=\"", kCrossColor,
                        "\"", output < 0 ? ", style=dashed" : "", "];\n");
      }
    }
  }
  for (int d = 0; d < num_devices; ++d) {
    if (cluster_body[d].empty()) continue;
    absl::StrAppend(&out, "  subgraph cluster_", d, " {\n    label=", Quote(placement.devices[d]),
                    ";\n    style=\"rounded,dashed\";\n    color=\"#555555\";\n", cluster_body[d],
                    "  }\n");
  }
  absl::StrAppend(&out, edges, "}\n");
  return out;
}

}  // namespace sluice
