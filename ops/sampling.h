// Data partitioning for data-parallel training: which examples (rows) or features (columns) a
// worker of a group reads, by the three rules of TRAINING.md section 1.
//   ShuffleSplit   sampling without replacement: epoch e's permutation of all n examples,
//                  seeded by (seed, e), cut into `workers` contiguous near-equal shards; worker i
//                  reads shard i. Across the workers each example appears exactly once per epoch
//                  (no padding, no duplicates); the first n % workers shards hold one more.
//   Bootstrap      sampling with replacement: worker i draws its examples independently and
//                  uniformly from all n, `count` of them, a stream seeded by (seed, i, e).
//   FeatureRange   column partitioning: worker i holds columns [begin, end) of every example,
//                  contiguous near-equal blocks as for ShuffleSplit.
// Every draw comes from Philox4x32-10 (ops/random_ops.h) keyed by the seed, so a result depends
// only on its arguments: every worker computes its own part, and a rerun repeats it. Errors name
// the bad argument. Thread-safe (pure functions).
//
//   SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> mine,
//                           ShuffleSplit({.num_examples = 1000, .workers = 4, .index = 1,
//                                         .seed = 7, .epoch = 0}));
#ifndef SLUICE_OPS_SAMPLING_H_
#define SLUICE_OPS_SAMPLING_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace sluice {

struct PartitionRequest {
  int64_t num_examples = 0;  // n, the rows of the data set (columns for FeatureRange).
  int64_t workers = 1;
  int64_t index = 0;  // This worker, in [0, workers).
  uint64_t seed = 0;
  int64_t epoch = 0;
};

// The permutation of [0, n) for (seed, epoch): a Fisher-Yates shuffle on Philox draws.
std::vector<int64_t> EpochPermutation(int64_t n, uint64_t seed, int64_t epoch);

// [begin, end) of part `index` when [0, n) is cut into `parts` contiguous near-equal parts.
absl::StatusOr<std::pair<int64_t, int64_t>> ContiguousPart(int64_t n, int64_t parts, int64_t index);

// This worker's examples for the epoch, in the permutation's order.
absl::StatusOr<std::vector<int64_t>> ShuffleSplit(const PartitionRequest& request);

// `count` examples drawn uniformly with replacement for this worker and epoch.
absl::StatusOr<std::vector<int64_t>> Bootstrap(const PartitionRequest& request, int64_t count);

// This worker's columns [begin, end) of num_examples (here: the number of columns).
absl::StatusOr<std::pair<int64_t, int64_t>> FeatureRange(const PartitionRequest& request);

}  // namespace sluice

#endif  // SLUICE_OPS_SAMPLING_H_
