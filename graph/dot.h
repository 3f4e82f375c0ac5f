// Graphviz DOT export of a placed graph, for people: one cluster per device, nodes filled with
// their device's colour, and each cross-device transfer (a Send/Recv pair after partitioning:
// one per tensor and destination device) drawn as one bold edge labelled with the tensor's
// dtype, shape and size. When a tensor has several consumers on the destination device, the
// edge ends in a small junction point inside that device's cluster and fans out from there.
// Control edges are dashed. Thread-safety: stateless.
//
//   SLUICE_ASSIGN_OR_RETURN(Placement p, PlaceGraph(*graph, devices));
//   std::string dot = PlacedGraphToDot(*graph, p);      // dot -Tsvg graph.dot > graph.svg
#ifndef SLUICE_GRAPH_DOT_H_
#define SLUICE_GRAPH_DOT_H_

#include <cstdint>
#include <string>

#include "graph/graph.h"
#include "graph/placer.h"

namespace sluice {

struct DotOptions {
  std::string title = "sluice";
  bool show_control_edges = true;
};

std::string PlacedGraphToDot(const Graph& graph, const Placement& placement,
                             const DotOptions& options = {});

// "12 B", "4 KiB", "1.5 MiB", "2 GiB".
std::string FormatBytes(double bytes);

}  // namespace sluice

#endif  // SLUICE_GRAPH_DOT_H_
