// Data partitioning rules (ops/sampling.h) against their definitions in TRAINING.md section 1:
// exact cover once per epoch, binomial bounds for the bootstrap, contiguous feature blocks.

#include "ops/sampling.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <vector>

#include "gtest/gtest.h"

namespace sluice {
namespace {

TEST(SamplingTest, ShuffleSplitCoversEveryExampleOncePerEpoch) {
  const int64_t n = 10, workers = 3;
  std::vector<std::vector<int64_t>> first_epoch;
  for (int64_t epoch = 0; epoch < 5; ++epoch) {
    std::vector<int64_t> all;
    std::vector<int64_t> sizes;
    for (int64_t w = 0; w < workers; ++w) {
      absl::StatusOr<std::vector<int64_t>> mine = ShuffleSplit(
          {.num_examples = n, .workers = workers, .index = w, .seed = 7, .epoch = epoch});
      ASSERT_TRUE(mine.ok()) << mine.status();
      sizes.push_back(static_cast<int64_t>(mine->size()));
      all.insert(all.end(), mine->begin(), mine->end());
      if (epoch == 0) first_epoch.push_back(*mine);
    }
    EXPECT_EQ(sizes, (std::vector<int64_t>{4, 3, 3}));  // No padding, no duplicates.
    std::sort(all.begin(), all.end());
    std::vector<int64_t> expected(n);
    std::iota(expected.begin(), expected.end(), 0);
    EXPECT_EQ(all, expected) << "epoch " << epoch;
  }
  // Reproducible, and a new order every epoch.
  EXPECT_EQ(*ShuffleSplit({.num_examples = n, .workers = workers, .index = 0, .seed = 7}),
            first_epoch[0]);
  EXPECT_NE(EpochPermutation(n, 7, 0), EpochPermutation(n, 7, 1));
  EXPECT_NE(EpochPermutation(n, 7, 0), EpochPermutation(n, 8, 0));
}

TEST(SamplingTest, EpochPermutationsAreUniform) {
  // 6000 permutations of 3 elements: each of the 6 orders about 1000 times (binomial standard
  // deviation 28.9; the bound is 5 of them).
  std::map<std::vector<int64_t>, int> counts;
  for (int64_t epoch = 0; epoch < 6000; ++epoch) ++counts[EpochPermutation(3, 11, epoch)];
  ASSERT_EQ(counts.size(), 6u);
  for (const auto& [perm, count] : counts) EXPECT_NEAR(count, 1000, 145);
}

TEST(SamplingTest, BootstrapDrawsUniformlyWithReplacement) {
  const int64_t n = 10, draws = 100000;
  // Counts ~ Binomial(100000, 0.1): mean 10000, standard deviation 94.9; bound 5 of them.
  for (int64_t w = 0; w < 2; ++w) {
    absl::StatusOr<std::vector<int64_t>> sample =
        Bootstrap({.num_examples = n, .workers = 2, .index = w, .seed = 3}, draws);
    ASSERT_TRUE(sample.ok());
    std::vector<int64_t> counts(n, 0);
    for (int64_t i : *sample) ++counts.at(i);
    for (int64_t c : counts) EXPECT_NEAR(c, 10000, 475);
  }
  // Workers and epochs draw independently; a rerun draws the same.
  auto draw = [](int64_t index, int64_t epoch) {
    return *Bootstrap(
        {.num_examples = 100, .workers = 2, .index = index, .seed = 3, .epoch = epoch}, 50);
  };
  EXPECT_NE(draw(0, 0), draw(1, 0));
  EXPECT_NE(draw(0, 0), draw(0, 1));
  EXPECT_EQ(draw(1, 2), draw(1, 2));
}

TEST(SamplingTest, FeatureRangesAreContiguousBlocksCoveringEveryColumn) {
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (int64_t w = 0; w < 4; ++w) {
    absl::StatusOr<std::pair<int64_t, int64_t>> r =
        FeatureRange({.num_examples = 10, .workers = 4, .index = w});
    ASSERT_TRUE(r.ok());
    ranges.push_back(*r);
  }
  EXPECT_EQ(ranges, (std::vector<std::pair<int64_t, int64_t>>{{0, 3}, {3, 6}, {6, 8}, {8, 10}}));
}

TEST(SamplingTest, BadArgumentsAreNamed) {
  EXPECT_EQ(ShuffleSplit({.num_examples = 10, .workers = 4, .index = 4}).status().message(),
            "worker index 4 is out of range for 4 workers (expected 0 <= index < 4)");
  EXPECT_EQ(ShuffleSplit({.num_examples = 10, .workers = 0}).status().message(),
            "the number of workers must be >= 1, got 0");
  EXPECT_EQ(FeatureRange({.num_examples = 3, .workers = 4, .index = 0}).status().message(),
            "cannot split 3 columns over 4 workers: each needs at least one");
  EXPECT_EQ(Bootstrap({.num_examples = 0, .workers = 1}, 5).status().message(),
            "cannot draw examples from an empty data set");
}

}  // namespace
}  // namespace sluice
