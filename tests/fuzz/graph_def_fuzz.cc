// Fuzzes GraphDef import (graph/graph_def.h) against the real op library: the path a client's
// CreateSession/ExtendSession graph and a master's RegisterGraph partition take, covering
// attribute decoding, input resolution, dtype checks, cycle detection and every op's shape
// function. An imported graph is then placed on two worker tasks and partitioned as the master
// does, and each partition goes through the worker's import again.
//
// The input is a serialised proto::GraphDef.
//
// Checked beyond "no crash": an imported graph exports to a GraphDef that imports again and
// exports the same; every partition of it imports (the master ships partitions to workers as
// GraphDefs, and a worker that refuses one fails every step of the session).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "google/protobuf/util/message_differencer.h"
#include "graph/graph.h"
#include "graph/graph.pb.h"
#include "graph/graph_def.h"
#include "graph/partitioner.h"
#include "graph/placer.h"
#include "ops/register.h"

namespace {

[[noreturn]] void Fail(const char* what, const std::string& detail, const std::string& def) {
  std::fprintf(stderr, "graph_def_fuzz: %s: %s\nGraphDef:\n%s\n", what, detail.c_str(),
               def.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  sluice::RegisterAllOps();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using sluice::Graph;
  sluice::proto::GraphDef def;
  if (!def.ParseFromArray(data, static_cast<int>(size))) return 0;
  absl::StatusOr<std::unique_ptr<Graph>> graph = sluice::GraphFromGraphDef(def);
  if (!graph.ok()) return 0;

  sluice::proto::GraphDef exported;
  sluice::ToGraphDef(**graph, &exported);
  absl::StatusOr<std::unique_ptr<Graph>> again = sluice::GraphFromGraphDef(exported);
  if (!again.ok()) {
    Fail("an imported graph's export does not import", again.status().ToString(),
         exported.DebugString());
  }
  sluice::proto::GraphDef exported_again;
  sluice::ToGraphDef(**again, &exported_again);
  std::string diff;
  google::protobuf::util::MessageDifferencer differ;
  differ.ReportDifferencesToString(&diff);
  if (!differ.Compare(exported, exported_again)) {
    Fail("export, import, export changes the GraphDef", diff, exported.DebugString());
  }

  // As the master: one CPU device per worker task, every node, the placeholders fed.
  absl::StatusOr<sluice::Placement> placement = sluice::PlaceGraph(
      **graph, {"/job:worker/task:0/device:cpu:0", "/job:worker/task:1/device:cpu:0"});
  if (!placement.ok()) return 0;
  sluice::PartitionOptions options;
  for (const sluice::Node* n : (*graph)->nodes()) {
    if (n->op() != "Placeholder") continue;
    for (int i = 0; i < n->num_outputs(); ++i) options.feeds.push_back({n, i});
  }
  absl::StatusOr<sluice::PartitionedGraph> parts =
      sluice::PartitionGraph(**graph, *placement, options);
  if (!parts.ok()) return 0;
  for (const sluice::GraphPartition& part : parts->partitions) {
    sluice::proto::GraphDef part_def;
    sluice::ToGraphDef(*part.graph, &part_def);
    absl::StatusOr<std::unique_ptr<Graph>> imported = sluice::GraphFromGraphDef(part_def);
    if (!imported.ok()) {
      Fail("a partition does not import", imported.status().ToString(), part_def.DebugString());
    }
  }
  return 0;
}
