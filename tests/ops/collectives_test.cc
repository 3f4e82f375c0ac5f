#include "ops/collectives.h"

#include <cmath>

#include "gtest/gtest.h"
#include "ops/base_ops.h"
#include "ops/register.h"

namespace sluice {
namespace {

TEST(CollectivesTest, CollectiveScopeOfFindsTheOutermostCollective) {
  EXPECT_EQ(ops::CollectiveScopeOf("AllReduce/Add_3"), "AllReduce");
  EXPECT_EQ(ops::CollectiveScopeOf("AllReduce_12/Add_3/_send_0_to_2"), "AllReduce_12");
  EXPECT_EQ(ops::CollectiveScopeOf("bsp/AllReduceInBuckets/AllReduce/Concat"),
            "bsp/AllReduceInBuckets");
  EXPECT_EQ(ops::CollectiveScopeOf("model/Broadcast_2/Identity"), "model/Broadcast_2");
  EXPECT_EQ(ops::CollectiveScopeOf("AllReduce"), "");  // A node, not a scope.
  EXPECT_EQ(ops::CollectiveScopeOf("AllReducer/Add"), "");
  EXPECT_EQ(ops::CollectiveScopeOf("AllReduce_x/Add"), "");
  EXPECT_EQ(ops::CollectiveScopeOf("dense/MatMul"), "");
}

// The cost model, written out again: hops of latency a plus bytes at bandwidth b.
TEST(CollectivesTest, TheCostModelPicksTheCheaperAlgorithm) {
  const double a = 400e-6, b = 1e9;
  for (int n : {2, 3, 4, 5, 8}) {
    int p = 1, rounds = 0;
    while (p * 2 <= n) {
      p *= 2;
      ++rounds;
    }
    if (p < n) ++rounds;
    for (double bytes = 1024; bytes <= 256.0 * 1024 * 1024; bytes *= 2) {
      const double ring = 2.0 * (n - 1) * (a + bytes / n / b);
      const double doubling = rounds * (a + bytes / b);
      EXPECT_EQ(ops::ChooseAllReduceAlgorithm(static_cast<int64_t>(bytes), n),
                doubling <= ring ? ops::AllReduceAlgorithm::kRecursiveDoubling
                                 : ops::AllReduceAlgorithm::kRing)
          << n << " members, " << bytes << " bytes";
    }
  }
  // Two members: one hop of the whole tensor beats two hops of half, at any size.
  EXPECT_EQ(ops::ChooseAllReduceAlgorithm(int64_t{1} << 30, 2),
            ops::AllReduceAlgorithm::kRecursiveDoubling);
  // Four: 8ab = 3.2 MB is the crossover.
  EXPECT_EQ(ops::ChooseAllReduceAlgorithm(3'000'000, 4),
            ops::AllReduceAlgorithm::kRecursiveDoubling);
  EXPECT_EQ(ops::ChooseAllReduceAlgorithm(3'400'000, 4), ops::AllReduceAlgorithm::kRing);
}

TEST(CollectivesTest, BucketsAreConsecutiveRunsOfOneDtypeWithinTheLimit) {
  RegisterAllOps();
  Scope s = ops::NewRootScope();
  auto ph = [&](DType t, std::vector<int64_t> dims) {
    return ops::Placeholder(s, t, TensorShape(dims));
  };
  std::vector<Output> grads = {ph(DType::kFloat32, {10}),    // 40 bytes
                               ph(DType::kFloat32, {4}),     // 16
                               ph(DType::kFloat32, {2, 2}),  // 16
                               ph(DType::kFloat64, {2}),     // 16, another dtype
                               ph(DType::kFloat64, {100}),   // 800, over the limit alone
                               ph(DType::kFloat64, {})};     // 8
  ASSERT_TRUE(s.status().ok()) << s.status();
  EXPECT_EQ(ops::PlanBuckets(grads, 64),
            (std::vector<std::vector<int>>{{0, 1}, {2}, {3}, {4}, {5}}));
  EXPECT_EQ(ops::PlanBuckets(grads, 1 << 20),
            (std::vector<std::vector<int>>{{0, 1, 2}, {3, 4, 5}}));
}

}  // namespace
}  // namespace sluice
