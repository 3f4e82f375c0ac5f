#include "ops/random_ops.h"

#include <cmath>
#include <cstring>
#include <random>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "core/status.h"
#include "graph/shape_inference.h"
#include "ops/kernel_util.h"
#include "ops/op_builder.h"

namespace sluice {

std::array<uint32_t, 4> Philox4x32(std::array<uint32_t, 4> ctr, std::array<uint32_t, 2> key) {
  constexpr uint32_t kMul0 = 0xD2511F53, kMul1 = 0xCD9E8D57;
  constexpr uint32_t kWeyl0 = 0x9E3779B9, kWeyl1 = 0xBB67AE85;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key[0] += kWeyl0;
      key[1] += kWeyl1;
    }
    const uint64_t p0 = static_cast<uint64_t>(kMul0) * ctr[0];
    const uint64_t p1 = static_cast<uint64_t>(kMul1) * ctr[2];
    ctr = {static_cast<uint32_t>(p1 >> 32) ^ ctr[1] ^ key[0], static_cast<uint32_t>(p1),
           static_cast<uint32_t>(p0 >> 32) ^ ctr[3] ^ key[1], static_cast<uint32_t>(p0)};
  }
  return ctr;
}

namespace {

constexpr double kTwoPi = 6.283185307179586476925286766559;

// [0, 1) from the top 24 bits (float) or 53 bits (double) of random words.
inline float UniformFloat(uint32_t w) { return static_cast<float>(w >> 8) * 0x1.0p-24f; }
inline double UniformDouble(uint32_t hi, uint32_t lo) {
  const uint64_t x = (static_cast<uint64_t>(hi) << 32) | lo;
  return static_cast<double>(x >> 11) * 0x1.0p-53;
}

// Box-Muller: two independent standard normals from u1 in (0, 1] and u2 in [0, 1).
inline void BoxMuller(double u1, double u2, double* z0, double* z1) {
  const double r = std::sqrt(-2.0 * std::log(u1));
  *z0 = r * std::cos(kTwoPi * u2);
  *z1 = r * std::sin(kTwoPi * u2);
}

// kTruncatedNormal: normals with |z| > 2 redrawn (as TensorFlow's TruncatedNormal).
enum class Distribution { kUniform, kNormal, kTruncatedNormal };

// Values one Philox block (4 words) yields: 4 floats or 2 doubles.
template <typename T>
constexpr int kPerBlock = sizeof(T) == 4 ? 4 : 2;

// Writes block `block`'s values (at most `count`) to `out`.
template <typename T, Distribution D>
void FillBlock(const std::array<uint32_t, 4>& w, T* out, int count) {
  T v[kPerBlock<T>];
  if constexpr (std::is_same_v<T, float>) {
    if constexpr (D == Distribution::kUniform) {
      for (int i = 0; i < 4; ++i) v[i] = UniformFloat(w[i]);
    } else {
      for (int i = 0; i < 4; i += 2) {
        double z0, z1;
        BoxMuller((w[i] + 1.0) * 0x1.0p-32, w[i + 1] * 0x1.0p-32, &z0, &z1);
        v[i] = static_cast<float>(z0);
        v[i + 1] = static_cast<float>(z1);
      }
    }
  } else {
    if constexpr (D == Distribution::kUniform) {
      v[0] = UniformDouble(w[0], w[1]);
      v[1] = UniformDouble(w[2], w[3]);
    } else {
      // 1 - [0, 1) is (0, 1]: log stays finite.
      BoxMuller(1.0 - UniformDouble(w[0], w[1]), UniformDouble(w[2], w[3]), &v[0], &v[1]);
    }
  }
  for (int i = 0; i < count; ++i) out[i] = v[i];
}

absl::StatusOr<TensorShape> OutputShape(const Tensor& shape_t) {
  if (shape_t.rank() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("shape must be a vector, got shape ", shape_t.shape().DebugString()));
  }
  SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> dims, TensorToInt64s(shape_t, "shape"));
  for (int64_t d : dims) {
    if (d < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("shape [", absl::StrJoin(dims, ","), "] has a negative dimension"));
    }
  }
  return TensorShape(absl::Span<const int64_t>(dims));
}

absl::Status RandomShape(InferenceContext* c) {
  if (const Tensor* shape = c->input_value(0)) {
    SLUICE_ASSIGN_OR_RETURN(TensorShape out, OutputShape(*shape));
    c->set_output(0, std::move(out));
    return absl::OkStatus();
  }
  const TensorShape& ss = c->input_shape(0);
  c->set_output(0, ss.rank() == 1 && ss.dim(0) >= 0
                       ? TensorShape(std::vector<int64_t>(ss.dim(0), kUnknownDim))
                       : TensorShape::UnknownRank());
  return absl::OkStatus();
}

// The Philox key (from seed) and counter half (from seed2) of a node; both 0: random ones.
void StreamKeys(int64_t seed_attr, int64_t seed2_attr, std::array<uint32_t, 2>* key,
                std::array<uint32_t, 2>* seed2_words) {
  uint64_t seed = static_cast<uint64_t>(seed_attr);
  uint64_t seed2 = static_cast<uint64_t>(seed2_attr);
  if (seed == 0 && seed2 == 0) {
    std::random_device rd;
    seed = (static_cast<uint64_t>(rd()) << 32) | rd();
    seed2 = (static_cast<uint64_t>(rd()) << 32) | rd();
  }
  *key = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  *seed2_words = {static_cast<uint32_t>(seed2), static_cast<uint32_t>(seed2 >> 32)};
}

template <typename T, Distribution D>
class RandomOp : public OpKernel {
 public:
  explicit RandomOp(const Node& node) : OpKernel(node) {
    StreamKeys(Attr<int64_t>("seed"), Attr<int64_t>("seed2"), &key_, &seed2_);
  }

  absl::Status Compute(OpKernelContext* ctx) override {
    SLUICE_ASSIGN_OR_RETURN(TensorShape shape, OutputShape(ctx->input(0)));
    SLUICE_ASSIGN_OR_RETURN(Tensor * y, ctx->allocate_output(0, shape));
    const int64_t n = y->num_elements();
    constexpr int kPer = kPerBlock<T>;
    const int64_t blocks = (n + kPer - 1) / kPer;
    uint64_t base;
    {
      // Reserve this run's blocks; the filling itself needs no lock.
      absl::MutexLock lock(&mu_);
      base = next_block_;
      next_block_ += blocks;
    }
    T* out = y->data<T>();
    auto fill = [&](Eigen::Index first, Eigen::Index last) {
      for (Eigen::Index b = first; b < last; ++b) {
        const uint64_t i = base + b;
        const int count = static_cast<int>(std::min<int64_t>(kPer, n - b * kPer));
        if constexpr (D == Distribution::kTruncatedNormal) {
          // Redraws use further counters of the same block (attempt in the top bits), so the
          // values depend only on the seed and the block, not on threads.
          T* dst = out + b * kPer;
          int have = 0;
          for (uint32_t attempt = 0; have < count; ++attempt) {
            const std::array<uint32_t, 4> w =
                Philox4x32({static_cast<uint32_t>(i),
                            static_cast<uint32_t>(i >> 32) ^ (attempt << 20), seed2_[0], seed2_[1]},
                           key_);
            T v[kPer];
            FillBlock<T, Distribution::kNormal>(w, v, kPer);
            for (int k = 0; k < kPer && have < count; ++k) {
              if (std::abs(v[k]) <= T(2)) dst[have++] = v[k];
            }
          }
        } else {
          const std::array<uint32_t, 4> w = Philox4x32(
              {static_cast<uint32_t>(i), static_cast<uint32_t>(i >> 32), seed2_[0], seed2_[1]},
              key_);
          FillBlock<T, D>(w, out + b * kPer, count);
        }
      }
    };
    if (n < kInlineEvalElements) {
      fill(0, blocks);
    } else {
      // Per block: 10 Philox rounds plus, for normals, a log, a sqrt and a sincos.
      const double cycles = D == Distribution::kUniform ? 60 : 200;
      ctx->eigen_device().parallelFor(blocks, Eigen::TensorOpCost(0, kPer * sizeof(T), cycles),
                                      fill);
    }
    return absl::OkStatus();
  }

 private:
  std::array<uint32_t, 2> key_;
  std::array<uint32_t, 2> seed2_;
  absl::Mutex mu_;
  uint64_t next_block_ ABSL_GUARDED_BY(mu_) = 0;
};

// A random permutation of `value`'s rows (dimension 0), by Fisher-Yates with the swap
// positions drawn from the node's Philox stream: one block of four words per run, then as many
// as the rows need (64-bit draws, reduced by multiply-shift, whose bias is below 2^-32 here).
class RandomShuffleOp : public OpKernel {
 public:
  explicit RandomShuffleOp(const Node& node) : OpKernel(node) {
    StreamKeys(Attr<int64_t>("seed"), Attr<int64_t>("seed2"), &key_, &seed2_);
  }

  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    if (x.rank() == 0 || x.dim(0) <= 1) {
      ctx->set_output(0, x);
      return absl::OkStatus();
    }
    const int64_t rows = x.dim(0);
    const int64_t blocks = (rows + 1) / 2;  // Two 64-bit draws per block.
    uint64_t base;
    {
      absl::MutexLock lock(&mu_);
      base = next_block_;
      next_block_ += blocks;
    }
    std::vector<int64_t> perm(rows);
    for (int64_t i = 0; i < rows; ++i) perm[i] = i;
    for (int64_t i = rows - 1; i > 0; --i) {
      const uint64_t b = base + static_cast<uint64_t>(i) / 2;
      const std::array<uint32_t, 4> w = Philox4x32(
          {static_cast<uint32_t>(b), static_cast<uint32_t>(b >> 32), seed2_[0], seed2_[1]}, key_);
      const int half = static_cast<int>(i % 2) * 2;
      const uint64_t r = (static_cast<uint64_t>(w[half]) << 32) | w[half + 1];
      const auto j = static_cast<int64_t>(
          (static_cast<unsigned __int128>(r) * static_cast<uint64_t>(i + 1)) >> 64);
      std::swap(perm[i], perm[j]);
    }
    SLUICE_ASSIGN_OR_RETURN(Tensor * y, ctx->allocate_output(0, x.shape()));
    const size_t row_bytes = x.TotalBytes() / rows;
    for (int64_t i = 0; i < rows && row_bytes > 0; ++i) {
      std::memcpy(static_cast<char*>(y->raw_data()) + i * row_bytes,
                  static_cast<const char*>(x.raw_data()) + perm[i] * row_bytes, row_bytes);
    }
    return absl::OkStatus();
  }

 private:
  std::array<uint32_t, 2> key_;
  std::array<uint32_t, 2> seed2_;
  absl::Mutex mu_;
  uint64_t next_block_ ABSL_GUARDED_BY(mu_) = 0;
};

absl::Status RegisterRandom(OpRegistry* ops, KernelRegistry* kernels, const char* op,
                            const char* doc, KernelFactory f32, KernelFactory f64) {
  SLUICE_RETURN_IF_ERROR(ops->Register(OpDefBuilder(op)
                                           .Input("shape: Tshape")
                                           .Output("output: dtype")
                                           .Attr("dtype: {float32, float64}")
                                           .Attr("seed: int = 0")
                                           .Attr("seed2: int = 0")
                                           .Attr("Tshape: {int32, int64} = int32")
                                           .SetIsStateful()
                                           .Doc(doc)
                                           .SetShapeFn(RandomShape)));
  SLUICE_RETURN_IF_ERROR(kernels->Register(op, kDeviceCpu, DType::kFloat32, std::move(f32)));
  return kernels->Register(op, kDeviceCpu, DType::kFloat64, std::move(f64));
}

}  // namespace

absl::Status RegisterRandomOps(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(RegisterRandom(
      ops, kernels, "RandomUniform",
      "Uniform values in [0, 1) of shape `shape`, from the Philox4x32-10 stream keyed by seed "
      "and seed2 (both 0: a random key).",
      MakeKernel<RandomOp<float, Distribution::kUniform>>,
      MakeKernel<RandomOp<double, Distribution::kUniform>>));
  SLUICE_RETURN_IF_ERROR(RegisterRandom(
      ops, kernels, "RandomNormal",
      "Standard normal values (mean 0, stddev 1) of shape `shape`, by Box-Muller from the "
      "Philox4x32-10 stream keyed by seed and seed2 (both 0: a random key).",
      MakeKernel<RandomOp<float, Distribution::kNormal>>,
      MakeKernel<RandomOp<double, Distribution::kNormal>>));
  SLUICE_RETURN_IF_ERROR(
      ops->Register(OpDefBuilder("RandomShuffle")
                        .Input("value: T")
                        .Output("output: T")
                        .Attr("T: type")
                        .Attr("seed: int = 0")
                        .Attr("seed2: int = 0")
                        .SetIsStateful()
                        .Doc("`value` with its rows (dimension 0) in a random order, from the "
                             "Philox4x32-10 stream keyed by seed and seed2 (both 0: random).")
                        .SetShapeFn([](InferenceContext* c) {
                          c->set_output(0, c->input_shape(0));
                          return absl::OkStatus();
                        })));
  for (DType dt : {DType::kFloat32, DType::kFloat64, DType::kInt32, DType::kInt64, DType::kBool}) {
    SLUICE_RETURN_IF_ERROR(
        kernels->Register("RandomShuffle", kDeviceCpu, dt, MakeKernel<RandomShuffleOp>));
  }
  return RegisterRandom(
      ops, kernels, "TruncatedNormal",
      "Standard normal values restricted to [-2, 2] (values beyond 2 standard deviations are "
      "drawn again), like RandomNormal otherwise.",
      MakeKernel<RandomOp<float, Distribution::kTruncatedNormal>>,
      MakeKernel<RandomOp<double, Distribution::kTruncatedNormal>>);
}

namespace ops {

Output RandomUniform(const Scope& scope, Input shape, DType dtype, int64_t seed,
                     SourceLocation loc) {
  return BuildOp(scope, "RandomUniform", {shape},
                 {{"dtype", AttrValue(dtype)}, {"seed", AttrValue(seed)}}, loc);
}

Output RandomNormal(const Scope& scope, Input shape, DType dtype, int64_t seed,
                    SourceLocation loc) {
  return BuildOp(scope, "RandomNormal", {shape},
                 {{"dtype", AttrValue(dtype)}, {"seed", AttrValue(seed)}}, loc);
}

}  // namespace ops
}  // namespace sluice
