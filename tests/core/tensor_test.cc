#include "core/tensor.h"

#include <cstdint>

#include "absl/strings/match.h"
#include "core/tensor_proto.h"
#include "gtest/gtest.h"

namespace sluice {
namespace {

TEST(TensorShapeTest, NumElementsAndDebugString) {
  TensorShape s({2, 3, 4});
  EXPECT_EQ(s.num_elements(), 24);
  EXPECT_EQ(s.DebugString(), "[2,3,4]");
  TensorShape partial({kUnknownDim, 4});
  EXPECT_FALSE(partial.IsFullyDefined());
  EXPECT_EQ(partial.num_elements(), -1);
  EXPECT_EQ(partial.DebugString(), "[?,4]");
  EXPECT_EQ(TensorShape::UnknownRank().DebugString(), "<unknown>");
  EXPECT_EQ(TensorShape().num_elements(), 1);
}

TEST(TensorShapeTest, MergeFillsUnknownsAndRejectsConflicts) {
  TensorShape merged;
  ASSERT_TRUE(TensorShape({kUnknownDim, 4}).MergeWith(TensorShape({3, kUnknownDim}), &merged).ok());
  EXPECT_EQ(merged, TensorShape({3, 4}));
  absl::Status s = TensorShape({2, 4}).MergeWith(TensorShape({3, 4}), &merged);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("differ in dimension 0"), std::string::npos) << s;
  EXPECT_FALSE(TensorShape({2}).IsCompatibleWith(TensorShape({2, 1})));
  EXPECT_TRUE(TensorShape::UnknownRank().IsCompatibleWith(TensorShape({2, 1})));
}

TEST(TensorDeathTest, FromVectorRefusesASizeMismatch) {
  EXPECT_DEATH(Tensor::FromVector<float>({1, 2}, TensorShape({3})),
               "Tensor::FromVector: 2 values for shape \\[3\\] \\(3 elements\\)");
  EXPECT_EQ(Tensor::FromVector<float>({1, 2, 3}, TensorShape({3})).num_elements(), 3);
}

TEST(TensorTest, BufferIs64ByteAligned) {
  for (int n : {1, 3, 17, 1000}) {
    Tensor t(DType::kFloat32, TensorShape({n}));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % 64, 0u);
  }
}

TEST(TensorTest, CopiesAndSlicesShareStorage) {
  Tensor t = Tensor::FromVector<float>({1, 2, 3, 4, 5, 6}, TensorShape({3, 2}));
  Tensor copy = t;
  EXPECT_TRUE(copy.SharesBufferWith(t));
  EXPECT_FALSE(t.RefCountIsOne());
  Tensor row = t.Slice(1, 3);
  EXPECT_EQ(row.shape(), TensorShape({2, 2}));
  EXPECT_EQ(row.matrix<float>()(0, 0), 3.0f);
  row.matrix<float>()(1, 1) = 60.0f;  // Writes through to the parent.
  EXPECT_EQ(t.flat<float>()(5), 60.0f);
  Tensor deep = t.DeepCopy();
  EXPECT_FALSE(deep.SharesBufferWith(t));
  EXPECT_TRUE(deep.BitwiseEquals(t));
}

TEST(TensorTest, EigenMapsAreZeroCopy) {
  Tensor t(DType::kFloat64, TensorShape({2, 3}));
  auto m = t.matrix<double>();
  EXPECT_EQ(m.data(), t.data<double>());
  m.setConstant(2.5);
  EXPECT_EQ(t.flat<double>()(4), 2.5);
  auto t2 = t.tensor<double, 2>();
  EXPECT_EQ(t2.dimension(1), 3);
  EXPECT_DEATH((t.tensor<double, 3>()), "rank-3 view of a tensor of shape \\[2,3\\]");
}

TEST(TensorTest, ReshapedChecksElementCount) {
  Tensor t = Tensor::FromVector<int32_t>({1, 2, 3, 4, 5, 6});
  auto ok = t.Reshaped(TensorShape({2, 3}));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->matrix<int32_t>()(1, 0), 4);
  auto bad = t.Reshaped(TensorShape({4, 2}));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("[4,2]"), std::string::npos);
}

TEST(TensorProtoTest, RoundTripsEveryDType) {
  std::vector<Tensor> tensors = {Tensor::FromVector<float>({1.5f, -2.0f}),
                                 Tensor::FromVector<double>({3.25}),
                                 Tensor::FromVector<int32_t>({7, 8, 9}, TensorShape({3, 1})),
                                 Tensor::FromVector<int64_t>({int64_t{1} << 40}),
                                 Tensor::Scalar<bool>(true),
                                 Tensor(DType::kFloat32, TensorShape({0, 5}))};
  for (const Tensor& t : tensors) {
    proto::TensorProto p;
    TensorToProto(t, &p);
    auto back = TensorFromProto(p);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_TRUE(back->BitwiseEquals(t)) << t.DebugString();
  }
}

TEST(TensorProtoTest, RejectsMalformedProtos) {
  proto::TensorProto p;
  TensorToProto(Tensor::FromVector<float>({1, 2, 3}), &p);
  p.mutable_content()->resize(8);
  auto s = TensorFromProto(p);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("needs 12 bytes of content but has 8"), std::string::npos)
      << s.status();

  proto::TensorProto bad_dtype = p;
  bad_dtype.set_dtype(static_cast<proto::DataType>(42));
  EXPECT_NE(TensorFromProto(bad_dtype).status().message().find("invalid dtype value 42"),
            std::string::npos);

  proto::TensorProto unknown = p;
  unknown.mutable_shape()->set_dim(0, -1);
  EXPECT_NE(TensorFromProto(unknown).status().message().find("not fully defined"),
            std::string::npos);

  proto::TensorProto bad_bool;
  TensorToProto(Tensor::Scalar<bool>(true), &bad_bool);
  (*bad_bool.mutable_content())[0] = 7;
  EXPECT_NE(TensorFromProto(bad_bool).status().message().find("bool tensor proto has byte 7"),
            std::string::npos);
}

// The core tests sit below tests/util (which needs the graph layer), so they keep their own.
::testing::AssertionResult StatusHas(const absl::Status& s, absl::StatusCode code,
                                     absl::string_view text) {
  if (s.code() == code && absl::StrContains(s.message(), text)) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << s << " lacks " << text;
}

TEST(TensorProtoTest, AShapeWhoseElementCountOverflowsIsRefused) {
  // [2^32, 2^32] has 2^64 elements: an unchecked product wraps to 0 and matches empty content,
  // which gave a zero-byte buffer behind a huge shape (kernels then read the heap).
  proto::TensorProto p;
  TensorToProto(Tensor::FromVector<float>({}), &p);
  p.mutable_shape()->clear_dim();
  p.mutable_shape()->add_dim(int64_t{1} << 32);
  p.mutable_shape()->add_dim(int64_t{1} << 32);
  EXPECT_TRUE(StatusHas(TensorFromProto(p).status(), absl::StatusCode::kInvalidArgument,
                        "shape [4294967296,4294967296] has more than 2^63-1 elements"));
}

// Found by tools/fuzz.sh: the announced shape was allocated before the content's length was
// checked, so a few bytes could cost gigabytes (or, larger, fail as out of memory).
TEST(TensorProtoTest, ContentIsCheckedBeforeTheAnnouncedShapeIsAllocated) {
  proto::TensorProto p;
  TensorToProto(Tensor::FromVector<float>({}), &p);
  p.mutable_shape()->set_dim(0, int64_t{1} << 40);  // 4 TiB of float32 announced, none sent.
  EXPECT_TRUE(StatusHas(TensorFromProto(p).status(), absl::StatusCode::kInvalidArgument,
                        "tensor proto of float32[1099511627776] needs 4398046511104 bytes of "
                        "content but has 0"));
}

TEST(TensorShapeTest, ElementCountsAreOverflowChecked) {
  TensorShape wraps({int64_t{1} << 32, int64_t{1} << 32});
  EXPECT_EQ(wraps.num_elements(), -1);
  EXPECT_TRUE(StatusHas(wraps.CheckedNumElements().status(), absl::StatusCode::kInvalidArgument,
                        "more than 2^63-1 elements"));
  EXPECT_TRUE(StatusHas(TensorShape({-1, 2}).CheckedNumElements().status(),
                        absl::StatusCode::kInvalidArgument, "shape [?,2] is not fully defined"));
  EXPECT_EQ(*TensorShape({0, int64_t{1} << 62}).CheckedNumElements(), 0);
  EXPECT_EQ(*TensorShape({3, 5}).CheckedNumElements(), 15);
}

TEST(TensorTest, AllocateChecksSizesAndReportsMemoryExhaustion) {
  // 2^62 elements fit int64, but not as float32 bytes.
  EXPECT_TRUE(StatusHas(Tensor::Allocate(DType::kFloat32, TensorShape({int64_t{1} << 62})).status(),
                        absl::StatusCode::kInvalidArgument, "needs more than 2^63-1 bytes"));
  // 10^15 float32 (4 PB) is addressable but never there: ResourceExhausted, no throw.
  auto huge = Tensor::Allocate(DType::kFloat32, TensorShape({100000, 100000, 100000}));
  EXPECT_TRUE(StatusHas(huge.status(), absl::StatusCode::kResourceExhausted,
                        "out of memory allocating 4000000000000000 bytes for a float32 "
                        "tensor of shape [100000,100000,100000]"));
  auto ok = Tensor::Allocate(DType::kInt64, TensorShape({3}));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->TotalBytes(), 24u);
  Tensor empty(DType::kFloat32, TensorShape({0}));
  EXPECT_FALSE(empty.Reshaped(TensorShape({int64_t{1} << 32, int64_t{1} << 32})).ok());
}

TEST(TensorTest, AllocationsChargeTheirBudgetUntilTheBufferIsFreed) {
  auto budget = std::make_shared<MemoryBudget>("session 's'", 100);
  auto a = Tensor::Allocate(DType::kFloat32, TensorShape({20}), budget.get());  // 80 bytes.
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(budget->used(), 80);
  EXPECT_TRUE(StatusHas(Tensor::Allocate(DType::kFloat32, TensorShape({6}), budget.get()).status(),
                        absl::StatusCode::kResourceExhausted,
                        "session 's' holds 80 bytes of tensors; 24 more would pass its limit of "
                        "100"));
  EXPECT_EQ(budget->used(), 80);  // A refused allocation charges nothing.
  Tensor view = a->Slice(0, 5);   // Shares the buffer: still charged.
  *a = Tensor();
  EXPECT_EQ(budget->used(), 80);
  view = Tensor();
  EXPECT_EQ(budget->used(), 0);
  EXPECT_TRUE(Tensor::Allocate(DType::kInt32, TensorShape({25}), budget.get()).ok());  // 100: fits.
  EXPECT_EQ(budget->used(), 0);  // ... and was freed at once.
}

TEST(TensorDeathTest, TheUncheckedConstructorAbortsOnAnOverflowingShape) {
  EXPECT_DEATH(Tensor(DType::kFloat32, TensorShape({int64_t{1} << 32, int64_t{1} << 32})),
               "overflows; use Tensor::Allocate");
}

TEST(DTypeTest, NamesRoundTrip) {
  for (DType d : {DType::kFloat32, DType::kFloat64, DType::kInt32, DType::kInt64, DType::kBool}) {
    auto back = DTypeFromName(DTypeName(d));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, d);
  }
  EXPECT_EQ(DTypeFromName("float16").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sluice

namespace sluice {
namespace {

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)  // No cache there.
TEST(TensorBufferTest, LargeBuffersAreReusedAtTheSameSize) {
  void* first = nullptr;
  {
    Tensor t(DType::kFloat32, TensorShape({1 << 19}));  // 2 MiB.
    first = t.raw_data();
  }
  Tensor again(DType::kFloat32, TensorShape({1 << 19}));
  EXPECT_EQ(again.raw_data(), first);
  Tensor other(DType::kFloat32, TensorShape({(1 << 19) + 16}));  // Another size: a new buffer.
  EXPECT_NE(other.raw_data(), first);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(other.raw_data()) % kTensorAlignment, 0u);
}

TEST(TensorBufferTest, TheMostRecentlyFreedBufferIsReusedFirst) {
  void* a_data = nullptr;
  void* b_data = nullptr;
  {
    Tensor a(DType::kFloat32, TensorShape({3 << 18}));  // 3 MiB, a size no other test uses.
    Tensor b(DType::kFloat32, TensorShape({3 << 18}));
    a_data = a.raw_data();
    b_data = b.raw_data();
  }  // b is freed first, then a.
  Tensor next(DType::kFloat32, TensorShape({3 << 18}));
  EXPECT_EQ(next.raw_data(), a_data);
  Tensor after(DType::kFloat32, TensorShape({3 << 18}));
  EXPECT_EQ(after.raw_data(), b_data);
}
#endif

}  // namespace
}  // namespace sluice
