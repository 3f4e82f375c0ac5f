// Data ops: the graph-side form of data partitioning (ops/sampling.h), for training loops that
// run on the workers without the client feeding every batch.
//   ShardBatchIndices  each run yields the row indices of this worker's next batch and the
//                      epoch they belong to. Attributes: num_examples, workers, index (this
//                      worker), batch_size, mode ("shuffle_split": epoch e's shard of
//                      ShuffleSplit; "with_replacement": Bootstrap's `sample_size` draws, default
//                      num_examples / workers), seed, drop_remainder (false: an epoch's last
//                      batch may be smaller; true: it is skipped). Batches never span epochs.
// Gather the rows of the data (a variable or constant on the worker) with the indices:
//
//   Output idx = ops::ShardBatchIndices(s, {.num_examples = 60000, .workers = 4, .index = 1,
//                                           .batch_size = 64, .seed = 7}, &epoch);
//   Output x = ops::Gather(s, images, idx), y = ops::Gather(s, labels, idx);
//
// The kernel keeps its position (epoch, offset) under a mutex, so concurrent steps take
// distinct batches; a fresh session (fresh kernels) starts again at epoch 0. Bad attributes fail
// the node with a message naming them.
#ifndef SLUICE_OPS_DATA_OPS_H_
#define SLUICE_OPS_DATA_OPS_H_

#include <cstdint>
#include <string>

#include "graph/op_def.h"
#include "graph/scope.h"
#include "runtime/kernel/kernel.h"

namespace sluice {

absl::Status RegisterDataOps(OpRegistry* ops, KernelRegistry* kernels);

namespace ops {

struct ShardBatchOptions {
  int64_t num_examples = 0;
  int64_t workers = 1;
  int64_t index = 0;
  int64_t batch_size = 1;
  std::string mode = "shuffle_split";
  int64_t sample_size = 0;  // with_replacement: 0 means num_examples / workers.
  int64_t seed = 0;
  bool drop_remainder = false;
};

// Output 0: int64 [batch] row indices; `epoch`, if given, receives output 1 (int64 scalar).
Output ShardBatchIndices(const Scope& scope, const ShardBatchOptions& options,
                         Output* epoch = nullptr, SourceLocation loc = SourceLocation::Current());

}  // namespace ops
}  // namespace sluice

#endif  // SLUICE_OPS_DATA_OPS_H_
