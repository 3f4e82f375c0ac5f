// Conversion between Graph and its GraphDef protobuf. Import validates everything and names the
// offending node: unknown op, missing or misnamed input, dtype mismatch, cycle, duplicate node
// name, wrong attribute type. Thread-safe: stateless.
//
//   proto::GraphDef def;
//   ToGraphDef(graph, &def);
//   SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<Graph> copy, GraphFromGraphDef(def));
#ifndef SLUICE_GRAPH_GRAPH_DEF_H_
#define SLUICE_GRAPH_GRAPH_DEF_H_

#include <memory>

#include "absl/status/statusor.h"
#include "graph/graph.h"
#include "graph/graph.pb.h"

namespace sluice {

inline constexpr int kGraphDefVersion = 1;

void ToGraphDef(const Graph& graph, proto::GraphDef* out);
// Builds and finalises a graph from `def`, with ops from `registry`.
absl::StatusOr<std::unique_ptr<Graph>> GraphFromGraphDef(
    const proto::GraphDef& def, const OpRegistry* registry = OpRegistry::Global());
// Builds without finalising (so a placer can still assign devices).
absl::StatusOr<std::unique_ptr<Graph>> GraphFromGraphDefUnfinalized(
    const proto::GraphDef& def, const OpRegistry* registry = OpRegistry::Global());

void AttrValueToProto(const AttrValue& value, proto::AttrValue* out);
absl::StatusOr<AttrValue> AttrValueFromProto(const proto::AttrValue& proto);

}  // namespace sluice

#endif  // SLUICE_GRAPH_GRAPH_DEF_H_
