// DynamicPartition, DynamicPartitionGrad and DynamicStitch against hand-worked values, their
// round trip (stitching the partitions by the partitioned positions gives the data back), and
// the errors that name the bad number or shape.
#include <cstdint>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "ops/all_ops.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

using test::RunScope;
using test::StatusHas;
using test::TensorEq;

Tensor I32(const std::vector<int32_t>& v, TensorShape shape) {
  return Tensor::FromVector<int32_t>(v, shape);
}
Tensor F32(const std::vector<float>& v, TensorShape shape) {
  return Tensor::FromVector<float>(v, shape);
}

TEST(DynamicPartitionTest, HandWorked) {
  Scope s = ops::NewRootScope();
  // Rows [1,2] [3,4] [5,6] [7,8] to partitions 1, 0, 1, 2; partition 3 stays empty.
  Output data = ops::Const(s, F32({1, 2, 3, 4, 5, 6, 7, 8}, {4, 2}));
  std::vector<Output> parts =
      ops::DynamicPartition(s, data, ops::Const(s, I32({1, 0, 1, 2}, {4})), 4);
  ASSERT_EQ(parts.size(), 4u);
  EXPECT_EQ(parts[0].shape(), TensorShape({-1, 2}));
  absl::StatusOr<std::vector<Tensor>> out = RunScope(s, parts);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorEq((*out)[0], F32({3, 4}, {1, 2})));
  EXPECT_TRUE(TensorEq((*out)[1], F32({1, 2, 5, 6}, {2, 2})));
  EXPECT_TRUE(TensorEq((*out)[2], F32({7, 8}, {1, 2})));
  EXPECT_TRUE(TensorEq((*out)[3], F32({}, {0, 2})));
}

TEST(DynamicPartitionTest, PartitionsOfRankTwoAndScalarRows) {
  Scope s = ops::NewRootScope();
  Output data = ops::Const(s, I32({10, 11, 12, 13, 14, 15}, {2, 3}));
  std::vector<Output> parts =
      ops::DynamicPartition(s, data, ops::Const(s, I32({0, 1, 0, 1, 1, 0}, {2, 3})), 2);
  absl::StatusOr<std::vector<Tensor>> out = RunScope(s, parts);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorEq((*out)[0], I32({10, 12, 15}, {3})));
  EXPECT_TRUE(TensorEq((*out)[1], I32({11, 13, 14}, {3})));
}

TEST(DynamicStitchTest, HandWorkedLaterInputsWinAndGapsAreZero) {
  Scope s = ops::NewRootScope();
  Output merged = ops::DynamicStitch(
      s, {ops::Const(s, I32({0, 4}, {2})), ops::Const(s, I32({4, 1}, {2}))},
      {ops::Const(s, F32({1, 2, 3, 4}, {2, 2})), ops::Const(s, F32({5, 6, 7, 8}, {2, 2}))});
  EXPECT_EQ(merged.shape(), TensorShape({-1, 2}));
  absl::StatusOr<std::vector<Tensor>> out = RunScope(s, {merged});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorEq((*out)[0], F32({1, 2, 7, 8, 0, 0, 0, 0, 5, 6}, {5, 2})));
}

TEST(DynamicStitchTest, StitchingThePartitionedPositionsRestoresTheData) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> part(0, 2);
  std::vector<int32_t> partitions(50), positions(50);
  std::vector<float> values(150);
  for (int i = 0; i < 50; ++i) {
    partitions[i] = part(rng);
    positions[i] = i;
  }
  for (int i = 0; i < 150; ++i) values[i] = static_cast<float>(i) * 0.5f;
  Scope s = ops::NewRootScope();
  Output p = ops::Const(s, I32(partitions, {50}));
  std::vector<Output> data = ops::DynamicPartition(s, ops::Const(s, F32(values, {50, 3})), p, 3);
  std::vector<Output> where = ops::DynamicPartition(s, ops::Const(s, I32(positions, {50})), p, 3);
  absl::StatusOr<std::vector<Tensor>> out = RunScope(s, {ops::DynamicStitch(s, where, data)});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorEq((*out)[0], F32(values, {50, 3})));
}

TEST(DynamicPartitionGradTest, RowsGoBackWhereTheyCameFrom) {
  Scope s = ops::NewRootScope();
  Output g = ops::DynamicPartitionGrad(
      s, ops::Const(s, I32({1, 0, 1}, {3})), ops::Const(s, Tensor::FromVector<int64_t>({3, 2})),
      {ops::Const(s, F32({10, 11}, {1, 2})), ops::Const(s, F32({1, 2, 3, 4}, {2, 2}))});
  absl::StatusOr<std::vector<Tensor>> out = RunScope(s, {g});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorEq((*out)[0], F32({1, 2, 10, 11, 3, 4}, {3, 2})));
}

TEST(DynamicPartitionTest, Errors) {
  {
    Scope s = ops::NewRootScope();
    Output p = ops::Placeholder(s, DType::kInt32);
    std::vector<Output> parts =
        ops::DynamicPartition(s.WithOpName("dp"), ops::Const(s, F32({1, 2, 3}, {3})), p, 2);
    absl::StatusOr<std::vector<Tensor>> out = RunScope(s, parts, {{p, I32({0, 2, 1}, {3})}});
    EXPECT_TRUE(StatusHas(out.status(), absl::StatusCode::kInvalidArgument,
                          "node 'dp' (DynamicPartition): partitions[1] = 2 is not in [0, 2)"));
    out = RunScope(s, parts, {{p, I32({0, 1}, {2})}});
    EXPECT_TRUE(StatusHas(out.status(), absl::StatusCode::kInvalidArgument,
                          "partitions's shape [2] must open data's shape [3]"));
  }
  {
    Scope s = ops::NewRootScope();
    Output i = ops::Placeholder(s, DType::kInt32);
    Output merged =
        ops::DynamicStitch(s.WithOpName("ds"), {i}, {ops::Const(s, F32({1, 2, 3, 4}, {2, 2}))});
    absl::StatusOr<std::vector<Tensor>> out = RunScope(s, {merged}, {{i, I32({0, -1}, {2})}});
    EXPECT_TRUE(StatusHas(out.status(), absl::StatusCode::kInvalidArgument,
                          "node 'ds' (DynamicStitch): indices[0][1] = -1 is negative"));
    out = RunScope(s, {merged}, {{i, I32({0, 1, 2}, {3})}});
    EXPECT_TRUE(StatusHas(out.status(), absl::StatusCode::kInvalidArgument,
                          "data[0] has shape [2,2], expected [3,2]"));
  }
}

}  // namespace
}  // namespace sluice
