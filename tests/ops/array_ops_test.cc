// Array op kernels and shape functions against hand-worked values and plain-loop references.
#include "ops/array_ops.h"

#include <cstdint>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "ops/all_ops.h"
#include "ops/gradients.h"
#include "runtime/session/session.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

using test::RunScope;
using test::RunScope1;
using test::StatusHas;
using test::TensorEq;

Tensor I64(const std::vector<int64_t>& v) { return Tensor::FromVector<int64_t>(v); }
Tensor I32(const std::vector<int32_t>& v) { return Tensor::FromVector<int32_t>(v); }
template <typename T>
Tensor Vals(const std::vector<T>& v, TensorShape shape) {
  return Tensor::FromVector<T>(v, shape);
}

// 0, 1, 2, ... as T (booleans alternate).
template <typename T>
Tensor Iota(TensorShape shape) {
  Tensor t(DTypeOf<T>::value, shape);
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    if constexpr (std::is_same_v<T, bool>) {
      t.data<bool>()[i] = (i % 3) == 1;
    } else {
      t.data<T>()[i] = static_cast<T>(i);
    }
  }
  return t;
}

std::vector<int64_t> Strides(const TensorShape& s) {
  std::vector<int64_t> st(s.rank(), 1);
  for (int i = s.rank() - 2; i >= 0; --i) st[i] = st[i + 1] * s.dim(i + 1);
  return st;
}

// Multi-index of flat position `flat` in shape `s`.
std::vector<int64_t> Unravel(int64_t flat, const TensorShape& s) {
  std::vector<int64_t> idx(s.rank());
  for (int i = s.rank() - 1; i >= 0; --i) {
    idx[i] = flat % s.dim(i);
    flat /= s.dim(i);
  }
  return idx;
}

template <typename T>
Tensor RefTranspose(const Tensor& x, const std::vector<int64_t>& perm) {
  TensorShape out_shape;
  for (int64_t p : perm) out_shape.AddDim(x.dim(p));
  Tensor y(x.dtype(), out_shape);
  std::vector<int64_t> xs = Strides(x.shape());
  for (int64_t i = 0; i < y.num_elements(); ++i) {
    std::vector<int64_t> oi = Unravel(i, out_shape);
    int64_t src = 0;
    for (size_t d = 0; d < perm.size(); ++d) src += oi[d] * xs[perm[d]];
    y.data<T>()[i] = x.data<T>()[src];
  }
  return y;
}

template <typename T>
Tensor RefSlice(const Tensor& x, const std::vector<int64_t>& begin,
                const std::vector<int64_t>& size) {
  TensorShape out_shape{absl::Span<const int64_t>(size)};
  Tensor y(x.dtype(), out_shape);
  std::vector<int64_t> xs = Strides(x.shape());
  for (int64_t i = 0; i < y.num_elements(); ++i) {
    std::vector<int64_t> oi = Unravel(i, out_shape);
    int64_t src = 0;
    for (size_t d = 0; d < oi.size(); ++d) src += (oi[d] + begin[d]) * xs[d];
    y.data<T>()[i] = x.data<T>()[src];
  }
  return y;
}

// Concatenation by walking output positions and finding the input each comes from.
template <typename T>
Tensor RefConcat(const std::vector<Tensor>& xs, int axis) {
  TensorShape out_shape = xs[0].shape();
  int64_t total = 0;
  for (const Tensor& x : xs) total += x.dim(axis);
  out_shape.set_dim(axis, total);
  Tensor y(xs[0].dtype(), out_shape);
  for (int64_t i = 0; i < y.num_elements(); ++i) {
    std::vector<int64_t> oi = Unravel(i, out_shape);
    int64_t a = oi[axis];
    size_t k = 0;
    while (a >= xs[k].dim(axis)) a -= xs[k++].dim(axis);
    oi[axis] = a;
    std::vector<int64_t> st = Strides(xs[k].shape());
    int64_t src = 0;
    for (size_t d = 0; d < oi.size(); ++d) src += oi[d] * st[d];
    y.data<T>()[i] = xs[k].data<T>()[src];
  }
  return y;
}

// ---------------------------------------------------------------------------------- Reshape

TEST(ReshapeTest, HandWorked) {
  Scope s = ops::NewRootScope();
  Output x = ops::Const(s, Vals<float>({1, 2, 3, 4, 5, 6}, {2, 3}));
  Output y = ops::Reshape(s, x, I64({3, 2}));
  EXPECT_EQ(y.shape(), TensorShape({3, 2}));  // Known when the graph is built.
  absl::StatusOr<Tensor> out = RunScope1(s, y);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorEq(*out, Vals<float>({1, 2, 3, 4, 5, 6}, {3, 2})));
}

TEST(ReshapeTest, InferredDimensionAllDtypes) {
  Scope s = ops::NewRootScope();
  std::vector<Output> fetches = {
      ops::Reshape(s, ops::Const(s, Iota<float>({2, 6})), I32({-1, 4})),
      ops::Reshape(s, ops::Const(s, Iota<double>({12})), I64({2, -1, 3})),
      ops::Reshape(s, ops::Const(s, Iota<int32_t>({3, 4})), I32({-1})),
      ops::Reshape(s, ops::Const(s, Iota<int64_t>({4, 3})), I64({6, -1})),
      ops::Reshape(s, ops::Const(s, Iota<bool>({2, 2, 3})), I64({12, 1})),
      ops::Reshape(s, ops::Const(s, Iota<float>({1, 1})), I64({})),  // To a scalar.
  };
  EXPECT_EQ(fetches[0].shape(), TensorShape({3, 4}));
  EXPECT_EQ(fetches[1].shape(), TensorShape({2, 2, 3}));
  absl::StatusOr<std::vector<Tensor>> out = RunScope(s, fetches);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorEq((*out)[0], Iota<float>({3, 4})));
  EXPECT_TRUE(TensorEq((*out)[1], Iota<double>({2, 2, 3})));
  EXPECT_TRUE(TensorEq((*out)[2], Iota<int32_t>({12})));
  EXPECT_TRUE(TensorEq((*out)[3], Iota<int64_t>({6, 2})));
  EXPECT_TRUE(TensorEq((*out)[4], Iota<bool>({12, 1})));
  EXPECT_TRUE(TensorEq((*out)[5], Iota<float>({})));
}

TEST(ReshapeTest, BraceListShape) {
  // Input's initializer_list constructors make a literal shape a one-liner.
  Scope s = ops::NewRootScope();
  Output y = ops::Reshape(s, ops::Const(s, Iota<float>({6})), {int64_t{2}, int64_t{3}});
  EXPECT_EQ(y.shape(), TensorShape({2, 3}));
  absl::StatusOr<Tensor> out = RunScope1(s, y);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorEq(*out, Iota<float>({2, 3})));
}

TEST(ReshapeTest, SharesTheInputBuffer) {
  Scope s = ops::NewRootScope();
  Output x = ops::Placeholder(s, DType::kFloat32);
  Output y = ops::Reshape(s, x, I64({-1}));
  Tensor fed = Iota<float>({2, 3});
  absl::StatusOr<Tensor> out = RunScope1(s, y, {{x, fed}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(out->SharesBufferWith(fed));
  EXPECT_EQ(out->raw_data(), fed.raw_data());
  EXPECT_EQ(out->shape(), TensorShape({6}));
}

TEST(ReshapeTest, ShapeFromPlaceholder) {
  Scope s = ops::NewRootScope();
  Output shape = ops::Placeholder(s, DType::kInt32, TensorShape({2}));
  Output y = ops::Reshape(s, ops::Const(s, Iota<int32_t>({6})), shape);
  EXPECT_EQ(y.shape(), TensorShape({-1, -1}));  // Rank known, dims not.
  absl::StatusOr<Tensor> out = RunScope1(s, y, {{shape, I32({3, 2})}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorEq(*out, Iota<int32_t>({3, 2})));
}

TEST(ReshapeTest, BuildTimeErrors) {
  struct Case {
    std::vector<int64_t> shape;
    std::string error;
  };
  for (const Case& c : std::vector<Case>{
           {{4}, "cannot reshape a tensor of shape [2,3] (6 elements) into shape [4] (4 elements)"},
           {{4, -1},
            "cannot reshape a tensor of shape [2,3] (6 elements) into shape [4,-1] (a multiple "
            "of 4 elements)"},
           {{0, -1},
            "cannot reshape a tensor of shape [2,3] (6 elements) into shape [0,-1] (the -1 "
            "dimension cannot be inferred when another dimension is 0)"},
           {{-1, -1}, "only one dimension of the new shape can be -1, got [-1,-1]"},
           {{-2, 3}, "invalid dimension -2 in the new shape [-2,3]"},
       }) {
    Scope s = ops::NewRootScope();
    ops::Reshape(s.WithOpName("r"), ops::Const(s, Iota<float>({2, 3})), I64(c.shape));
    EXPECT_TRUE(StatusHas(s.status(), absl::StatusCode::kInvalidArgument, c.error));
    EXPECT_TRUE(StatusHas(s.status(), absl::StatusCode::kInvalidArgument, "node 'r' (Reshape)"));
  }
  Scope s = ops::NewRootScope();
  ops::Reshape(s, ops::Const(s, Iota<float>({6})), ops::Const(s, Vals<int64_t>({2, 3}, {1, 2})));
  EXPECT_TRUE(StatusHas(s.status(), absl::StatusCode::kInvalidArgument,
                        "shape must be a vector, got shape [1,2]"));
}

TEST(ReshapeTest, RunTimeError) {
  Scope s = ops::NewRootScope();
  Output x = ops::Placeholder(s, DType::kFloat32);
  Output y = ops::Reshape(s.WithOpName("r"), x, I64({4, -1}));
  absl::StatusOr<Tensor> out = RunScope1(s, y, {{x, Iota<float>({2, 5})}});
  EXPECT_TRUE(StatusHas(out.status(), absl::StatusCode::kInvalidArgument,
                        "node 'r' (Reshape): cannot reshape a tensor of shape [2,5] (10 elements) "
                        "into shape [4,-1] (a multiple of 4 elements)"));
}

TEST(ReshapeTest, AnOverflowingShapeIsRefused) {
  // 2^32 * 2^32 wraps to 0 in int64: unchecked, an empty tensor took this shape and a Slice of
  // it read the heap.
  const std::vector<int64_t> wraps = {int64_t{1} << 32, int64_t{1} << 32};
  {
    Scope s = ops::NewRootScope();
    ops::Reshape(s, ops::Const(s, Iota<float>({0})), I64(wraps));
    EXPECT_TRUE(StatusHas(s.status(), absl::StatusCode::kInvalidArgument,
                          "the new shape [4294967296,4294967296] has more than 2^63-1 elements"));
  }
  Scope s = ops::NewRootScope();
  Output x = ops::Placeholder(s, DType::kFloat32);
  Output shape = ops::Placeholder(s, DType::kInt64);
  Output r = ops::Reshape(s.WithOpName("r"), x, shape);
  Output y = ops::Slice(s, r, I64({0, 0}), I64({1, 65536}));
  absl::StatusOr<Tensor> out = RunScope1(s, y, {{x, Iota<float>({0})}, {shape, I64(wraps)}});
  EXPECT_TRUE(StatusHas(out.status(), absl::StatusCode::kInvalidArgument,
                        "node 'r' (Reshape): the new shape [4294967296,4294967296] has more "
                        "than 2^63-1 elements"));
}

// -------------------------------------------------------------------------------- Transpose

TEST(TransposeTest, HandWorkedMatrix) {
  Scope s = ops::NewRootScope();
  Output y = ops::Transpose(s, ops::Const(s, Vals<float>({1, 2, 3, 4, 5, 6}, {2, 3})), I32({1, 0}));
  EXPECT_EQ(y.shape(), TensorShape({3, 2}));
  absl::StatusOr<Tensor> out = RunScope1(s, y);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorEq(*out, Vals<float>({1, 4, 2, 5, 3, 6}, {3, 2})));
}

template <typename T>
void CheckTransposeAgainstReference() {
  const std::vector<std::pair<TensorShape, std::vector<int64_t>>> cases = {
      {{3, 4, 5}, {2, 0, 1}},
      {{3, 4, 5}, {1, 0, 2}},
      {{2, 3, 4, 5}, {3, 1, 2, 0}},
      {{2, 1, 3, 2, 2}, {4, 3, 2, 1, 0}},
      {{4, 70}, {1, 0}},
      {{0, 3}, {1, 0}}};
  for (const auto& [shape, perm] : cases) {
    Scope s = ops::NewRootScope();
    Tensor x = Iota<T>(shape);
    absl::StatusOr<Tensor> out = RunScope1(s, ops::Transpose(s, ops::Const(s, x), I64(perm)));
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_TRUE(TensorEq(*out, RefTranspose<T>(x, perm))) << shape.DebugString();
  }
}

TEST(TransposeTest, MatchesReferenceForEveryDtype) {
  CheckTransposeAgainstReference<float>();
  CheckTransposeAgainstReference<double>();
  CheckTransposeAgainstReference<int32_t>();
  CheckTransposeAgainstReference<int64_t>();
  CheckTransposeAgainstReference<bool>();
}

TEST(TransposeTest, LargeUsesThreadPoolAndMatches) {
  Scope s = ops::NewRootScope();
  Tensor x = Iota<float>({64, 300, 3});
  absl::StatusOr<Tensor> out = RunScope1(s, ops::Transpose(s, ops::Const(s, x), I32({2, 0, 1})));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorEq(*out, RefTranspose<float>(x, {2, 0, 1})));
}

TEST(TransposeTest, IdentityPermutationForwardsTheBuffer) {
  Scope s = ops::NewRootScope();
  Output x = ops::Placeholder(s, DType::kInt32);
  Output y = ops::Transpose(s, x, I32({0, 1}));
  Tensor fed = Iota<int32_t>({2, 3});
  absl::StatusOr<Tensor> out = RunScope1(s, y, {{x, fed}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(out->SharesBufferWith(fed));
  EXPECT_TRUE(TensorEq(*out, fed));
}

TEST(TransposeTest, InvalidPermutations) {
  {
    Scope s = ops::NewRootScope();
    ops::Transpose(s, ops::Const(s, Iota<float>({2, 3})), I32({0, 0}));
    EXPECT_TRUE(StatusHas(s.status(), absl::StatusCode::kInvalidArgument,
                          "transpose permutation [0,0] is not a permutation of 0..1"));
  }
  {
    Scope s = ops::NewRootScope();
    ops::Transpose(s, ops::Const(s, Iota<float>({2, 3})), I32({1, 0, 2}));
    EXPECT_TRUE(StatusHas(s.status(), absl::StatusCode::kInvalidArgument,
                          "transpose permutation [1,0,2] has 3 entries but x has rank 2 (shape "
                          "[2,3])"));
  }
  {
    Scope s = ops::NewRootScope();
    Output perm = ops::Placeholder(s, DType::kInt32);
    Output y = ops::Transpose(s.WithOpName("t"), ops::Const(s, Iota<float>({2, 3})), perm);
    EXPECT_EQ(y.shape(), TensorShape({-1, -1}));
    absl::StatusOr<Tensor> out = RunScope1(s, y, {{perm, I32({2, 0})}});
    EXPECT_TRUE(StatusHas(out.status(), absl::StatusCode::kInvalidArgument,
                          "node 't' (Transpose): transpose permutation [2,0] is not a "
                          "permutation of 0..1"));
  }
}

// ----------------------------------------------------------------------------------- Concat

TEST(ConcatTest, HandWorked) {
  Scope s = ops::NewRootScope();
  Output a = ops::Const(s, Vals<float>({1, 2, 3, 4}, {2, 2}));
  Output b = ops::Const(s, Vals<float>({5, 6}, {2, 1}));
  Output c = ops::Const(s, Vals<float>({7, 8}, {1, 2}));
  Output cols = ops::Concat(s, {a, b}, 1);
  Output rows = ops::Concat(s, {a, c}, 0);
  Output neg = ops::Concat(s, {a, b, a}, -1);
  EXPECT_EQ(cols.shape(), TensorShape({2, 3}));
  EXPECT_EQ(rows.shape(), TensorShape({3, 2}));
  EXPECT_EQ(neg.shape(), TensorShape({2, 5}));
  absl::StatusOr<std::vector<Tensor>> out = RunScope(s, {cols, rows, neg});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorEq((*out)[0], Vals<float>({1, 2, 5, 3, 4, 6}, {2, 3})));
  EXPECT_TRUE(TensorEq((*out)[1], Vals<float>({1, 2, 3, 4, 7, 8}, {3, 2})));
  EXPECT_TRUE(TensorEq((*out)[2], Vals<float>({1, 2, 5, 1, 2, 3, 4, 6, 3, 4}, {2, 5})));
}

template <typename T>
void CheckConcatAgainstReference() {
  for (int axis = 0; axis < 3; ++axis) {
    std::vector<Tensor> xs;
    for (int64_t k : {2, 1, 3}) {
      TensorShape shape({4, 3, 5});
      shape.set_dim(axis, k);
      xs.push_back(Iota<T>(shape));
    }
    Scope s = ops::NewRootScope();
    std::vector<Output> values;
    for (const Tensor& x : xs) values.push_back(ops::Const(s, x));
    absl::StatusOr<Tensor> out = RunScope1(s, ops::Concat(s, values, axis));
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_TRUE(TensorEq(*out, RefConcat<T>(xs, axis))) << "axis " << axis;
  }
}

TEST(ConcatTest, MatchesReferenceForEveryDtype) {
  CheckConcatAgainstReference<float>();
  CheckConcatAgainstReference<double>();
  CheckConcatAgainstReference<int32_t>();
  CheckConcatAgainstReference<int64_t>();
  CheckConcatAgainstReference<bool>();
}

TEST(ConcatTest, LargeAndEmptyInputs) {
  Scope s = ops::NewRootScope();
  std::vector<Tensor> xs = {Iota<double>({300, 70}), Iota<double>({300, 0}),
                            Iota<double>({300, 130})};
  std::vector<Output> values;
  for (const Tensor& x : xs) values.push_back(ops::Const(s, x));
  absl::StatusOr<Tensor> out = RunScope1(s, ops::Concat(s, values, 1));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorEq(*out, RefConcat<double>(xs, 1)));
}

TEST(ConcatTest, Errors) {
  {
    Scope s = ops::NewRootScope();
    ops::Concat(s, {ops::Const(s, Iota<float>({2, 3})), ops::Const(s, Iota<float>({2, 4}))}, 0);
    EXPECT_TRUE(StatusHas(s.status(), absl::StatusCode::kInvalidArgument,
                          "inputs to concatenate along axis 0 must match in every other "
                          "dimension: input 0 has shape [2,3], input 1 has shape [2,4]"));
  }
  {
    Scope s = ops::NewRootScope();
    ops::Concat(s, {ops::Const(s, Iota<float>({2, 3})), ops::Const(s, Iota<float>({3}))}, 0);
    EXPECT_TRUE(StatusHas(s.status(), absl::StatusCode::kInvalidArgument,
                          "inputs to concatenate must have the same rank: input 0 has shape "
                          "[2,3], input 1 has shape [3]"));
  }
  {
    Scope s = ops::NewRootScope();
    ops::Concat(s, {ops::Const(s, Iota<float>({2, 3})), ops::Const(s, Iota<float>({2, 3}))}, 2);
    EXPECT_TRUE(StatusHas(s.status(), absl::StatusCode::kInvalidArgument,
                          "axis 2 is out of range for rank 2 (expected -2 <= axis < 2)"));
  }
  {
    // Unknown shapes at build time: the kernel reports the mismatch.
    Scope s = ops::NewRootScope();
    Output a = ops::Placeholder(s, DType::kInt64);
    Output b = ops::Placeholder(s, DType::kInt64);
    Output y = ops::Concat(s.WithOpName("c"), {a, b}, 1);
    absl::StatusOr<Tensor> out =
        RunScope1(s, y, {{a, Iota<int64_t>({2, 3})}, {b, Iota<int64_t>({3, 3})}});
    EXPECT_TRUE(StatusHas(out.status(), absl::StatusCode::kInvalidArgument,
                          "node 'c' (Concat): inputs to concatenate along axis 1 must match in "
                          "every other dimension: input 0 has shape [2,3], input 1 has shape "
                          "[3,3]"));
  }
}

// ------------------------------------------------------------------------------------ Split

TEST(SplitTest, HandWorked) {
  Scope s = ops::NewRootScope();
  Output x = ops::Const(s, Vals<int32_t>({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {2, 6}));
  std::vector<Output> cols = ops::Split(s, 1, x, 3);
  std::vector<Output> rows = ops::Split(s, -2, x, 2);
  ASSERT_EQ(cols.size(), 3u);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(cols[0].shape(), TensorShape({2, 2}));
  EXPECT_EQ(rows[1].shape(), TensorShape({1, 6}));
  absl::StatusOr<std::vector<Tensor>> out =
      RunScope(s, {cols[0], cols[1], cols[2], rows[0], rows[1]});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorEq((*out)[0], Vals<int32_t>({1, 2, 7, 8}, {2, 2})));
  EXPECT_TRUE(TensorEq((*out)[1], Vals<int32_t>({3, 4, 9, 10}, {2, 2})));
  EXPECT_TRUE(TensorEq((*out)[2], Vals<int32_t>({5, 6, 11, 12}, {2, 2})));
  EXPECT_TRUE(TensorEq((*out)[3], Vals<int32_t>({1, 2, 3, 4, 5, 6}, {1, 6})));
  EXPECT_TRUE(TensorEq((*out)[4], Vals<int32_t>({7, 8, 9, 10, 11, 12}, {1, 6})));
}

template <typename T>
void CheckSplitAgainstReference() {
  const TensorShape shape({4, 6, 2});
  Tensor x = Iota<T>(shape);
  for (int axis = 0; axis < 3; ++axis) {
    const int num = axis == 2 ? 2 : 2 + axis;  // 2, 3, 2
    Scope s = ops::NewRootScope();
    std::vector<Output> parts = ops::Split(s, axis, ops::Const(s, x), num);
    absl::StatusOr<std::vector<Tensor>> out = RunScope(s, parts);
    ASSERT_TRUE(out.ok()) << out.status();
    const int64_t k = shape.dim(axis) / num;
    for (int i = 0; i < num; ++i) {
      std::vector<int64_t> begin = {0, 0, 0}, size = {4, 6, 2};
      begin[axis] = i * k;
      size[axis] = k;
      EXPECT_TRUE(TensorEq((*out)[i], RefSlice<T>(x, begin, size))) << axis << " " << i;
    }
  }
}

TEST(SplitTest, MatchesReferenceForEveryDtype) {
  CheckSplitAgainstReference<float>();
  CheckSplitAgainstReference<double>();
  CheckSplitAgainstReference<int32_t>();
  CheckSplitAgainstReference<int64_t>();
  CheckSplitAgainstReference<bool>();
}

TEST(SplitTest, ContiguousPartsShareTheBuffer) {
  Scope s = ops::NewRootScope();
  Output x = ops::Placeholder(s, DType::kFloat32);
  std::vector<Output> parts = ops::Split(s, 0, x, 2);
  Tensor fed = Iota<float>({4, 3});
  absl::StatusOr<std::vector<Tensor>> out = RunScope(s, parts, {{x, fed}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE((*out)[1].SharesBufferWith(fed));
  EXPECT_TRUE(TensorEq((*out)[1], Vals<float>({6, 7, 8, 9, 10, 11}, {2, 3})));
}

TEST(SplitTest, NotDivisible) {
  {
    Scope s = ops::NewRootScope();
    ops::Split(s, 1, ops::Const(s, Iota<float>({2, 5})), 2);
    EXPECT_TRUE(StatusHas(s.status(), absl::StatusCode::kInvalidArgument,
                          "dimension 1 of shape [2,5] (size 5) cannot be split into 2 equal "
                          "parts"));
  }
  {
    Scope s = ops::NewRootScope();
    Output x = ops::Placeholder(s, DType::kFloat32);
    std::vector<Output> parts = ops::Split(s.WithOpName("sp"), 0, x, 3);
    absl::StatusOr<std::vector<Tensor>> out = RunScope(s, parts, {{x, Iota<float>({4})}});
    EXPECT_TRUE(StatusHas(out.status(), absl::StatusCode::kInvalidArgument,
                          "node 'sp' (Split): dimension 0 of shape [4] (size 4) cannot be split "
                          "into 3 equal parts"));
  }
  {
    Scope s = ops::NewRootScope();
    ops::Split(s, 3, ops::Const(s, Iota<float>({2, 5})), 1);
    EXPECT_TRUE(StatusHas(s.status(), absl::StatusCode::kInvalidArgument,
                          "axis 3 is out of range for rank 2"));
  }
}

// ------------------------------------------------------------------------------------ Slice

TEST(SliceTest, HandWorked) {
  Scope s = ops::NewRootScope();
  Output x = ops::Const(s, Vals<float>({1, 2, 3, 4, 5, 6}, {2, 3}));
  Output a = ops::Slice(s, x, I32({0, 1}), I32({2, 2}));
  Output b = ops::Slice(s, x, I32({1, 0}), I32({1, -1}));
  Output c = ops::Slice(s, x, I64({0, 2}), I64({-1, 1}));
  EXPECT_EQ(a.shape(), TensorShape({2, 2}));
  EXPECT_EQ(b.shape(), TensorShape({1, 3}));
  absl::StatusOr<std::vector<Tensor>> out = RunScope(s, {a, b, c});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorEq((*out)[0], Vals<float>({2, 3, 5, 6}, {2, 2})));
  EXPECT_TRUE(TensorEq((*out)[1], Vals<float>({4, 5, 6}, {1, 3})));
  EXPECT_TRUE(TensorEq((*out)[2], Vals<float>({3, 6}, {2, 1})));
}

template <typename T>
void CheckSliceAgainstReference() {
  std::mt19937 rng(7);
  const TensorShape shape({5, 4, 6, 3});
  Tensor x = Iota<T>(shape);
  for (int trial = 0; trial < 10; ++trial) {
    std::vector<int64_t> begin(4), size(4), resolved(4);
    for (int d = 0; d < 4; ++d) {
      begin[d] = std::uniform_int_distribution<int64_t>(0, shape.dim(d))(rng);
      resolved[d] = std::uniform_int_distribution<int64_t>(0, shape.dim(d) - begin[d])(rng);
      size[d] = (trial % 3 == 0 && d == 2) ? -1 : resolved[d];
      if (size[d] == -1) resolved[d] = shape.dim(d) - begin[d];
    }
    Scope s = ops::NewRootScope();
    absl::StatusOr<Tensor> out =
        RunScope1(s, ops::Slice(s, ops::Const(s, x), I64(begin), I64(size)));
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_TRUE(TensorEq(*out, RefSlice<T>(x, begin, resolved))) << "trial " << trial;
  }
}

TEST(SliceTest, MatchesReferenceForEveryDtype) {
  CheckSliceAgainstReference<float>();
  CheckSliceAgainstReference<double>();
  CheckSliceAgainstReference<int32_t>();
  CheckSliceAgainstReference<int64_t>();
  CheckSliceAgainstReference<bool>();
}

TEST(SliceTest, RowRangeSharesTheBuffer) {
  Scope s = ops::NewRootScope();
  Output x = ops::Placeholder(s, DType::kFloat32);
  Output y = ops::Slice(s, x, I32({1, 0}), I32({2, -1}));
  Tensor fed = Iota<float>({4, 2});
  absl::StatusOr<Tensor> out = RunScope1(s, y, {{x, fed}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(out->SharesBufferWith(fed));
  EXPECT_TRUE(TensorEq(*out, Vals<float>({2, 3, 4, 5}, {2, 2})));
}

TEST(SliceTest, OutOfBounds) {
  struct Case {
    std::vector<int64_t> begin, size;
    std::string error;
  };
  for (const Case& c : std::vector<Case>{
           {{0, 1},
            {2, 4},
            "slice range [1, 5) of dimension 1 is out of bounds for input shape "
            "[2,3]"},
           {{3, 0},
            {-1, 1},
            "slice range [3, 2) of dimension 0 is out of bounds for input "
            "shape [2,3]"},
           {{-1, 0},
            {1, 1},
            "slice range [-1, 0) of dimension 0 is out of bounds for input "
            "shape [2,3]"},
           {{0, 0}, {1, -2}, "size -2 of dimension 1 is invalid (sizes must be >= -1)"},
           {{0, 1},
            {1, std::numeric_limits<int64_t>::max()},
            "slice of dimension 1 from 1 with size 9223372036854775807 overflows int64"},
           {{0},
            {1},
            "begin [0] and size [1] must each have 2 entries for an input of shape "
            "[2,3]"},
       }) {
    Scope s = ops::NewRootScope();
    ops::Slice(s, ops::Const(s, Iota<float>({2, 3})), I64(c.begin), I64(c.size));
    EXPECT_TRUE(StatusHas(s.status(), absl::StatusCode::kInvalidArgument, c.error));
  }
  Scope s = ops::NewRootScope();
  Output x = ops::Placeholder(s, DType::kFloat32);
  Output y = ops::Slice(s.WithOpName("sl"), x, I64({0, 1}), I64({2, 4}));
  absl::StatusOr<Tensor> out = RunScope1(s, y, {{x, Iota<float>({2, 3})}});
  EXPECT_TRUE(StatusHas(out.status(), absl::StatusCode::kInvalidArgument,
                        "node 'sl' (Slice): slice range [1, 5) of dimension 1 is out of bounds "
                        "for input shape [2,3]"));
}

// ------------------------------------------------------------------------------------- Cast

TEST(CastTest, HandWorked) {
  Scope s = ops::NewRootScope();
  Output f = ops::Const(s, Vals<float>({1.7f, -1.7f, 0.0f, -0.5f, 3.0f}, {5}));
  Output b = ops::Const(s, Vals<bool>({true, false, true}, {3}));
  Output i64 = ops::Const(s, Vals<int64_t>({-3, 0, 5000000000}, {3}));
  std::vector<Output> fetches = {
      ops::Cast(s, f, DType::kInt32),
      ops::Cast(s, f, DType::kBool),
      ops::Cast(s, f, DType::kFloat64),
      ops::Cast(s, b, DType::kFloat32),
      ops::Cast(s, b, DType::kInt64),
      ops::Cast(s, i64, DType::kFloat64),
      ops::Cast(s, i64, DType::kBool),
      ops::Cast(s, ops::Cast(s, f, DType::kFloat64), DType::kFloat32),
  };
  absl::StatusOr<std::vector<Tensor>> out = RunScope(s, fetches);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorEq((*out)[0], Vals<int32_t>({1, -1, 0, 0, 3}, {5})));
  EXPECT_TRUE(TensorEq((*out)[1], Vals<bool>({true, true, false, true, true}, {5})));
  EXPECT_TRUE(TensorEq((*out)[2], Vals<double>({1.7f, -1.7f, 0.0, -0.5, 3.0}, {5})));
  EXPECT_TRUE(TensorEq((*out)[3], Vals<float>({1, 0, 1}, {3})));
  EXPECT_TRUE(TensorEq((*out)[4], Vals<int64_t>({1, 0, 1}, {3})));
  EXPECT_TRUE(TensorEq((*out)[5], Vals<double>({-3, 0, 5000000000.0}, {3})));
  EXPECT_TRUE(TensorEq((*out)[6], Vals<bool>({true, false, true}, {3})));
  EXPECT_TRUE(TensorEq((*out)[7], Vals<float>({1.7f, -1.7f, 0.0f, -0.5f, 3.0f}, {5})));
}

TEST(CastTest, EveryPairMatchesStaticCast) {
  const std::vector<double> values = {0, 1, -2, 3.75, 100, -0.25};
  const DType all[] = {DType::kFloat32, DType::kFloat64, DType::kInt32, DType::kInt64,
                       DType::kBool};
  for (DType src : all) {
    for (DType dst : all) {
      Tensor x(src, TensorShape({static_cast<int64_t>(values.size())}));
      Tensor expected(dst, x.shape());
      for (size_t i = 0; i < values.size(); ++i) {
        SLUICE_SWITCH_DTYPE(src, S, { x.data<S>()[i] = static_cast<S>(values[i]); }, {});
        SLUICE_SWITCH_DTYPE(src, S,
                            {
                              const S v = x.data<S>()[i];
                              SLUICE_SWITCH_DTYPE(
                                  dst, D, { expected.data<D>()[i] = static_cast<D>(v); }, {});
                            },
                            {});
      }
      Scope s = ops::NewRootScope();
      Output y = ops::Cast(s, ops::Const(s, x), dst);
      absl::StatusOr<Tensor> out = RunScope1(s, y);
      ASSERT_TRUE(out.ok()) << out.status();
      EXPECT_TRUE(TensorEq(*out, expected)) << DTypeName(src) << " -> " << DTypeName(dst);
    }
  }
}

TEST(CastTest, SameDtypeForwardsTheBuffer) {
  Scope s = ops::NewRootScope();
  Output x = ops::Placeholder(s, DType::kFloat64);
  Tensor fed = Iota<double>({3});
  absl::StatusOr<Tensor> out = RunScope1(s, ops::Cast(s, x, DType::kFloat64), {{x, fed}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(out->SharesBufferWith(fed));
}

// --------------------------------------------------------------------- Fill, Zeros/OnesLike

TEST(FillTest, HandWorked) {
  Scope s = ops::NewRootScope();
  Output a = ops::Fill(s, I32({2, 3}), 7);
  Output b = ops::Fill(s, I64({2}), 2.5);
  Output c = ops::Fill(s, I64({1, 2}), ops::Const(s, Tensor::Scalar<bool>(true)));
  Output d = ops::Fill(s, I64({0, 4}), 1.0f);
  EXPECT_EQ(a.shape(), TensorShape({2, 3}));
  absl::StatusOr<std::vector<Tensor>> out = RunScope(s, {a, b, c, d});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorEq((*out)[0], Vals<int32_t>({7, 7, 7, 7, 7, 7}, {2, 3})));
  EXPECT_TRUE(TensorEq((*out)[1], Vals<double>({2.5, 2.5}, {2})));
  EXPECT_TRUE(TensorEq((*out)[2], Vals<bool>({true, true}, {1, 2})));
  EXPECT_TRUE(TensorEq((*out)[3], Tensor(DType::kFloat32, TensorShape({0, 4}))));
}

TEST(FillTest, Errors) {
  {
    Scope s = ops::NewRootScope();
    ops::Fill(s, I64({2, -1}), 1.0f);
    EXPECT_TRUE(StatusHas(s.status(), absl::StatusCode::kInvalidArgument,
                          "dims [2,-1] has a negative dimension"));
  }
  {
    Scope s = ops::NewRootScope();
    ops::Fill(s, I64({2}), {1.0f, 2.0f});
    EXPECT_TRUE(StatusHas(s.status(), absl::StatusCode::kInvalidArgument,
                          "value must be a scalar, got shape [2]"));
  }
  {
    Scope s = ops::NewRootScope();
    Output dims = ops::Placeholder(s, DType::kInt32);
    Output y = ops::Fill(s.WithOpName("f"), dims, 1.0f);
    absl::StatusOr<Tensor> out = RunScope1(s, y, {{dims, I32({-3})}});
    EXPECT_TRUE(StatusHas(out.status(), absl::StatusCode::kInvalidArgument,
                          "node 'f' (Fill): dims [-3] has a negative dimension"));
  }
}

TEST(FillTest, AnAllocationThatCannotBeMetIsResourceExhaustedAndTheSessionGoesOn) {
  // Beside a MatMul, so the failing node runs on a oneTBB task while another kernel runs.
  Scope s = ops::NewRootScope();
  Output dims = ops::Placeholder(s, DType::kInt64);
  Output huge = ops::Fill(s.WithOpName("f"), dims, 0.0f);
  Output m = ops::Const(s, Iota<float>({64, 64}));
  Output mm = ops::MatMul(s, m, m);
  auto graph = s.Finalize();
  ASSERT_TRUE(graph.ok()) << graph.status();
  auto session = Session::Create(*graph);
  ASSERT_TRUE(session.ok()) << session.status();
  std::vector<Tensor> out;
  absl::Status st = (*session)->Run({{dims, I64({100000, 100000, 100000})}}, {huge, mm}, &out);
  EXPECT_TRUE(StatusHas(st, absl::StatusCode::kResourceExhausted,
                        "node 'f' (Fill): output 0: out of memory allocating 4000000000000000 "
                        "bytes for a float32 tensor of shape [100000,100000,100000]"));
  ASSERT_TRUE((*session)->Run({{dims, I64({2})}}, {huge, mm}, &out).ok());
  EXPECT_TRUE(TensorEq(out[0], Vals<float>({0, 0}, {2})));
}

template <typename T>
void CheckZerosOnesLike() {
  Scope s = ops::NewRootScope();
  Output x = ops::Const(s, Iota<T>({2, 3}));
  absl::StatusOr<std::vector<Tensor>> out =
      RunScope(s, {ops::ZerosLike(s, x), ops::OnesLike(s, x)});
  ASSERT_TRUE(out.ok()) << out.status();
  std::vector<T> zeros(6, T(0)), ones(6, T(1));
  EXPECT_TRUE(TensorEq((*out)[0], Vals<T>(zeros, {2, 3})));
  EXPECT_TRUE(TensorEq((*out)[1], Vals<T>(ones, {2, 3})));
}

TEST(ZerosOnesLikeTest, EveryDtype) {
  CheckZerosOnesLike<float>();
  CheckZerosOnesLike<double>();
  CheckZerosOnesLike<int32_t>();
  CheckZerosOnesLike<int64_t>();
  CheckZerosOnesLike<bool>();
}

// ------------------------------------------------------------------------------------ Range

TEST(RangeTest, HandWorked) {
  Scope s = ops::NewRootScope();
  Output a = ops::Range(s, 0, 5, 1);
  Output b = ops::Range(s, int64_t{10}, int64_t{1}, int64_t{-3});
  Output c = ops::Range(s, 0.5, 2.0, 0.5);
  Output d = ops::Range(s, 3, 3, 1);
  EXPECT_EQ(a.shape(), TensorShape({5}));
  EXPECT_EQ(b.shape(), TensorShape({3}));
  absl::StatusOr<std::vector<Tensor>> out = RunScope(s, {a, b, c, d});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(TensorEq((*out)[0], I32({0, 1, 2, 3, 4})));
  EXPECT_TRUE(TensorEq((*out)[1], I64({10, 7, 4})));
  EXPECT_TRUE(TensorEq((*out)[2], Tensor::FromVector<double>({0.5, 1.0, 1.5})));
  EXPECT_EQ((*out)[3].shape(), TensorShape({0}));
}

TEST(RangeTest, Errors) {
  {
    Scope s = ops::NewRootScope();
    ops::Range(s, 0, 5, 0);
    EXPECT_TRUE(
        StatusHas(s.status(), absl::StatusCode::kInvalidArgument, "Range: delta must not be 0"));
  }
  Scope s = ops::NewRootScope();
  Output limit = ops::Placeholder(s, DType::kInt32);
  Output r = ops::Range(s.WithOpName("r"), 5, limit, 1);
  EXPECT_EQ(r.shape(), TensorShape({-1}));
  absl::StatusOr<std::vector<Tensor>> out = RunScope(s, {r}, {{limit, Tensor::Scalar<int32_t>(2)}});
  EXPECT_TRUE(StatusHas(out.status(), absl::StatusCode::kInvalidArgument,
                        "node 'r' (Range): Range: start 5 > limit 2 with delta 1"));
}

}  // namespace
}  // namespace sluice

namespace sluice {
namespace {

TEST(SleepTest, ForwardsItsInputAndItsGradientWaitsToo) {
  Scope s = ops::NewRootScope();
  Output x = ops::Const(s, Tensor::FromVector<float>({1, 2, 3}));
  Output y = ops::Sleep(s, ops::Mul(s, x, x), 1000, 2000);
  std::vector<Output> grads;
  ASSERT_TRUE(AddGradients(s, {ops::ReduceSum(s, y, {0})}, {x}, &grads).ok());
  // The gradient passes through a Sleep of gradient_microseconds.
  const Node* wait = nullptr;
  for (const Node* n : s.graph()->nodes()) {
    if (n->op() == "Sleep" && n != y.node()) wait = n;
  }
  ASSERT_NE(wait, nullptr);
  EXPECT_EQ(*wait->GetAttr<int64_t>("microseconds"), 2000);
  absl::StatusOr<std::vector<Tensor>> out = test::RunScope(s, {y, grads[0]});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(test::TensorEq((*out)[0], Tensor::FromVector<float>({1, 4, 9})));
  EXPECT_TRUE(test::TensorEq((*out)[1], Tensor::FromVector<float>({2, 4, 6})));
}

TEST(SleepTest, RefusesANegativeWait) {
  Scope s = ops::NewRootScope();
  Output y = ops::Sleep(s.WithOpName("nap"), ops::Const(s, Tensor::Scalar<float>(1)), -5);
  EXPECT_TRUE(
      test::StatusHas(test::RunScope1(s, y).status(), absl::StatusCode::kInvalidArgument,
                      "node 'nap' (Sleep): microseconds must be in [0, 3600000000], got -5"));
}

}  // namespace
}  // namespace sluice
