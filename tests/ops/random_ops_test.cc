// Random ops: the Philox generator against Random123's known answers, reproducibility across
// sessions, and the distributions' moments over 100k samples.
#include "ops/random_ops.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "ops/all_ops.h"
#include "runtime/session/session.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

using test::StatusHas;
using test::TensorEq;

Tensor Shape(const std::vector<int64_t>& dims) { return Tensor::FromVector<int64_t>(dims); }

enum class Kind { kUniform, kNormal };

// A graph with one random node; `runs` runs of it in one fresh session.
std::vector<Tensor> Draw(Kind kind, DType dtype, const std::vector<int64_t>& dims, int64_t seed,
                         int runs = 1) {
  Scope s = ops::NewRootScope();
  Output r = kind == Kind::kUniform ? ops::RandomUniform(s, Shape(dims), dtype, seed)
                                    : ops::RandomNormal(s, Shape(dims), dtype, seed);
  absl::StatusOr<std::shared_ptr<const Graph>> graph = s.Finalize();
  EXPECT_TRUE(graph.ok()) << graph.status();
  absl::StatusOr<std::unique_ptr<Session>> session = Session::Create(*graph);
  EXPECT_TRUE(session.ok()) << session.status();
  std::vector<Tensor> results;
  for (int i = 0; i < runs; ++i) {
    std::vector<Tensor> out;
    absl::Status status = (*session)->Run({}, {r}, &out);
    EXPECT_TRUE(status.ok()) << status;
    if (status.ok()) results.push_back(out[0]);
  }
  return results;
}

std::vector<double> AsDoubles(const Tensor& t) {
  std::vector<double> v(t.num_elements());
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    v[i] = t.dtype() == DType::kFloat32 ? t.data<float>()[i] : t.data<double>()[i];
  }
  return v;
}

void MeanStd(const std::vector<double>& v, double* mean, double* stddev) {
  double sum = 0;
  for (double x : v) sum += x;
  *mean = sum / v.size();
  double sq = 0;
  for (double x : v) sq += (x - *mean) * (x - *mean);
  *stddev = std::sqrt(sq / (v.size() - 1));
}

TEST(PhiloxTest, KnownAnswers) {
  // Random123 tests/kat_vectors, "philox4x32 10": counter, key -> output.
  EXPECT_EQ(Philox4x32({0, 0, 0, 0}, {0, 0}),
            (std::array<uint32_t, 4>{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  EXPECT_EQ(Philox4x32({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}),
            (std::array<uint32_t, 4>{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  EXPECT_EQ(Philox4x32({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}),
            (std::array<uint32_t, 4>{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

TEST(RandomUniformTest, ValuesFollowTheDocumentedStream) {
  // Element i of the first run is word i % 4 of block i / 4, top 24 bits scaled by 2^-24;
  // the key is the seed, counter words 2-3 are seed2 (0 here).
  const int64_t seed = 0x1234567890;
  Tensor t = Draw(Kind::kUniform, DType::kFloat32, {10}, seed)[0];
  for (int64_t i = 0; i < 10; ++i) {
    std::array<uint32_t, 4> w =
        Philox4x32({static_cast<uint32_t>(i / 4), 0, 0, 0},
                   {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
    EXPECT_EQ(t.data<float>()[i], static_cast<float>(w[i % 4] >> 8) / 16777216.0f) << i;
  }
  // float64: one value per two words, 53 bits.
  Tensor d = Draw(Kind::kUniform, DType::kFloat64, {4}, seed)[0];
  for (int64_t i = 0; i < 4; ++i) {
    std::array<uint32_t, 4> w =
        Philox4x32({static_cast<uint32_t>(i / 2), 0, 0, 0},
                   {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
    uint64_t bits = (static_cast<uint64_t>(w[2 * (i % 2)]) << 32) | w[2 * (i % 2) + 1];
    EXPECT_EQ(d.data<double>()[i], static_cast<double>(bits >> 11) / 9007199254740992.0) << i;
  }
}

TEST(RandomTest, SameSeedInFreshSessionsIsBitIdentical) {
  for (Kind kind : {Kind::kUniform, Kind::kNormal}) {
    for (DType dtype : {DType::kFloat32, DType::kFloat64}) {
      std::vector<Tensor> a = Draw(kind, dtype, {3, 7}, 42, 3);
      std::vector<Tensor> b = Draw(kind, dtype, {3, 7}, 42, 3);
      ASSERT_EQ(a.size(), 3u);
      ASSERT_EQ(b.size(), 3u);
      for (int run = 0; run < 3; ++run) {
        EXPECT_TRUE(TensorEq(a[run], b[run])) << "run " << run;
        EXPECT_EQ(a[run].shape(), TensorShape({3, 7}));
      }
      // Successive runs of one session continue the stream.
      EXPECT_FALSE(a[0].BitwiseEquals(a[1]));
      EXPECT_FALSE(a[1].BitwiseEquals(a[2]));
    }
  }
}

TEST(RandomTest, RunsContinueOneStream) {
  // Two runs of 8 floats (2 blocks each) are the 16 values a single run of 16 gives.
  std::vector<Tensor> small = Draw(Kind::kUniform, DType::kFloat32, {8}, 5, 2);
  Tensor big = Draw(Kind::kUniform, DType::kFloat32, {16}, 5)[0];
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(small[0].data<float>()[i], big.data<float>()[i]);
    EXPECT_EQ(small[1].data<float>()[i], big.data<float>()[8 + i]);
  }
}

TEST(RandomTest, ConcurrentRunsShareOneStreamWithoutOverlap) {
  // Runs from several threads take disjoint parts of the node's stream: together they are the
  // values the same number of sequential runs gives, in some order.
  constexpr int kThreads = 4, kRuns = 25;
  Scope s = ops::NewRootScope();
  Output r = ops::RandomUniform(s, Shape({8}), DType::kFloat32, 11);
  std::unique_ptr<Session> session = *Session::Create(*s.Finalize());
  std::vector<std::vector<float>> per_thread(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRuns; ++i) {
        std::vector<Tensor> out;
        ASSERT_TRUE(session->Run({}, {r}, &out).ok());
        for (int k = 0; k < 8; ++k) per_thread[t].push_back(out[0].data<float>()[k]);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  std::vector<float> concurrent;
  for (const auto& v : per_thread) concurrent.insert(concurrent.end(), v.begin(), v.end());
  std::vector<float> sequential;
  for (const Tensor& t : Draw(Kind::kUniform, DType::kFloat32, {8}, 11, kThreads * kRuns)) {
    sequential.insert(sequential.end(), t.data<float>(), t.data<float>() + 8);
  }
  std::sort(concurrent.begin(), concurrent.end());
  std::sort(sequential.begin(), sequential.end());
  EXPECT_EQ(concurrent, sequential);
}

TEST(RandomTest, ParallelFillMatchesSerialFill) {
  // 200k values are generated on the thread pool, 1000 on the calling thread; both are the
  // start of one stream.
  for (Kind kind : {Kind::kUniform, Kind::kNormal}) {
    Tensor big = Draw(kind, DType::kFloat64, {200000}, 9)[0];
    Tensor small = Draw(kind, DType::kFloat64, {1000}, 9)[0];
    for (int i = 0; i < 1000; ++i) ASSERT_EQ(big.data<double>()[i], small.data<double>()[i]);
  }
}

TEST(RandomTest, DifferentSeedsDiffer) {
  for (Kind kind : {Kind::kUniform, Kind::kNormal}) {
    Tensor a = Draw(kind, DType::kFloat32, {100}, 1)[0];
    Tensor b = Draw(kind, DType::kFloat32, {100}, 2)[0];
    int equal = 0;
    for (int i = 0; i < 100; ++i) equal += a.data<float>()[i] == b.data<float>()[i];
    EXPECT_LT(equal, 3);
  }
}

TEST(RandomTest, SeedZeroIsNondeterministic) {
  Tensor a = Draw(Kind::kUniform, DType::kFloat64, {16}, 0)[0];
  Tensor b = Draw(Kind::kUniform, DType::kFloat64, {16}, 0)[0];
  EXPECT_FALSE(a.BitwiseEquals(b));  // Equal only if two 64-bit random keys collide.
}

TEST(RandomUniformTest, RangeAndMoments) {
  // 100k samples: the mean's standard error is sqrt(1/12 / 1e5) = 0.0009, the variance's
  // about 0.0002; the bounds below are over 5 standard errors.
  for (DType dtype : {DType::kFloat32, DType::kFloat64}) {
    Tensor t = Draw(Kind::kUniform, dtype, {100, 1000}, 1234)[0];
    std::vector<double> v = AsDoubles(t);
    double lo = 1, hi = 0;
    for (double x : v) {
      lo = std::min(lo, x);
      hi = std::max(hi, x);
    }
    EXPECT_GE(lo, 0.0);
    EXPECT_LT(hi, 1.0);
    double mean, stddev;
    MeanStd(v, &mean, &stddev);
    EXPECT_NEAR(mean, 0.5, 0.005) << DTypeName(dtype);
    EXPECT_NEAR(stddev * stddev, 1.0 / 12, 0.002) << DTypeName(dtype);
    // Each tenth of [0, 1) holds 10% of the samples (standard error 0.1%).
    std::vector<int> bins(10, 0);
    for (double x : v) ++bins[static_cast<int>(x * 10)];
    for (int b = 0; b < 10; ++b) EXPECT_NEAR(bins[b] / 1e5, 0.1, 0.005) << "bin " << b;
  }
}

TEST(RandomNormalTest, Moments) {
  // 100k samples: standard errors are 0.0032 for the mean and 0.0022 for the stddev.
  for (DType dtype : {DType::kFloat32, DType::kFloat64}) {
    Tensor t = Draw(Kind::kNormal, dtype, {100000}, 77)[0];
    std::vector<double> v = AsDoubles(t);
    double mean, stddev;
    MeanStd(v, &mean, &stddev);
    EXPECT_NEAR(mean, 0.0, 0.02) << DTypeName(dtype);
    EXPECT_NEAR(stddev, 1.0, 0.015) << DTypeName(dtype);
    // Shape, not just moments: P(|z| < 1) = 0.6827, P(|z| < 2) = 0.9545.
    int within1 = 0, within2 = 0;
    for (double x : v) {
      ASSERT_TRUE(std::isfinite(x));
      within1 += std::fabs(x) < 1;
      within2 += std::fabs(x) < 2;
    }
    EXPECT_NEAR(within1 / 1e5, 0.6827, 0.01) << DTypeName(dtype);
    EXPECT_NEAR(within2 / 1e5, 0.9545, 0.005) << DTypeName(dtype);
  }
}

TEST(RandomTest, ShapeInferenceAndErrors) {
  {
    Scope s = ops::NewRootScope();
    Output r = ops::RandomNormal(s, Shape({2, 5}), DType::kFloat64, 3);
    EXPECT_EQ(r.shape(), TensorShape({2, 5}));
    EXPECT_EQ(r.dtype(), DType::kFloat64);
  }
  {
    Scope s = ops::NewRootScope();
    ops::RandomUniform(s, Shape({2, -1}), DType::kFloat32);
    EXPECT_TRUE(StatusHas(s.status(), absl::StatusCode::kInvalidArgument,
                          "shape [2,-1] has a negative dimension"));
  }
  {
    Scope s = ops::NewRootScope();
    ops::RandomUniform(s, Shape({2}), DType::kInt32);
    EXPECT_TRUE(StatusHas(s.status(), absl::StatusCode::kInvalidArgument,
                          "attribute dtype is int32, which is not one of {float32, float64}"));
  }
  {
    Scope s = ops::NewRootScope();
    Output shape = ops::Placeholder(s, DType::kInt32);
    Output r = ops::RandomNormal(s.WithOpName("rn"), shape, DType::kFloat32, 1);
    absl::StatusOr<Tensor> out = test::RunScope1(s, r, {{shape, Tensor::Scalar<int32_t>(3)}});
    EXPECT_TRUE(StatusHas(out.status(), absl::StatusCode::kInvalidArgument,
                          "node 'rn' (RandomNormal): shape must be a vector, got shape []"));
  }
}

}  // namespace
}  // namespace sluice
