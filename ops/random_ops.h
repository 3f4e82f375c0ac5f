// Random ops: tensors of pseudo-random numbers.
//   RandomUniform  uniform in [0, 1)
//   RandomNormal   normal with mean 0 and standard deviation 1 (Box-Muller)
//   TruncatedNormal  the same restricted to [-2, 2] (redrawn beyond; Python builds it by name)
//   RandomShuffle  its input's rows in a random order (same seeds; Python builds it by name)
// Both take the output shape as an int32/int64 vector and attributes dtype (float32 or
// float64), seed and seed2. They are stateful: each run of a node gives new numbers.
//
// The generator is Philox4x32-10 (Salmon et al., "Parallel Random Numbers: As Easy as 1, 2, 3",
// SC'11), counter based: block i of a node's stream is Philox(counter = {i, seed2}, key = seed),
// so any range of the stream can be computed independently and a large tensor is filled in
// parallel with the same result as a serial fill. Each kernel instance keeps the index of its
// next block under a mutex: successive runs continue the stream, and a fresh session (fresh
// kernels) with the same non-zero seed repeats it bit for bit. seed == 0 and seed2 == 0 picks a
// nondeterministic key. A session makes one kernel per node per distinct (feeds, fetches,
// targets) signature, and each starts the stream from its beginning.
//
//   Output noise = ops::RandomNormal(s, Tensor::FromVector<int64_t>({64, 10}), DType::kFloat32,
//                                    /*seed=*/42);
#ifndef SLUICE_OPS_RANDOM_OPS_H_
#define SLUICE_OPS_RANDOM_OPS_H_

#include <array>
#include <cstdint>

#include "graph/op_def.h"
#include "graph/scope.h"
#include "runtime/kernel/kernel.h"

namespace sluice {

absl::Status RegisterRandomOps(OpRegistry* ops, KernelRegistry* kernels);

// The Philox4x32 block function with 10 rounds (exposed for known-answer tests).
std::array<uint32_t, 4> Philox4x32(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

namespace ops {

Output RandomUniform(const Scope& scope, Input shape, DType dtype, int64_t seed = 0,
                     SourceLocation loc = SourceLocation::Current());
Output RandomNormal(const Scope& scope, Input shape, DType dtype, int64_t seed = 0,
                    SourceLocation loc = SourceLocation::Current());

}  // namespace ops
}  // namespace sluice

#endif  // SLUICE_OPS_RANDOM_OPS_H_
