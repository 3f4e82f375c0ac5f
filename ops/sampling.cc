#include "ops/sampling.h"

#include <algorithm>
#include <array>

#include "absl/strings/str_cat.h"
#include "ops/random_ops.h"

namespace sluice {
namespace {

// Each rule draws from its own Philox key (the seed with a rule tag in the high word), so the
// streams of different rules never overlap.
constexpr uint32_t kPermutationTag = 0x5045524d;  // "PERM"
constexpr uint32_t kBootstrapTag = 0x424f4f54;    // "BOOT"

std::array<uint32_t, 2> Key(uint64_t seed, uint32_t tag) {
  return {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32) ^ tag};
}

// A uniform integer in [0, bound) from draw `i` of the stream (counter {i, a, b}): the high half
// of a 64-bit word times the bound (Lemire's multiply-shift; its bias, below bound / 2^64, is
// far under anything a test of a data set can see).
int64_t Uniform(const std::array<uint32_t, 2>& key, uint64_t i, uint32_t a, uint32_t b,
                int64_t bound) {
  const std::array<uint32_t, 4> w =
      Philox4x32({static_cast<uint32_t>(i), static_cast<uint32_t>(i >> 32), a, b}, key);
  const uint64_t r = (static_cast<uint64_t>(w[0]) << 32) | w[1];
  return static_cast<int64_t>((static_cast<unsigned __int128>(r) * static_cast<uint64_t>(bound)) >>
                              64);
}

absl::Status Check(const PartitionRequest& r) {
  if (r.num_examples < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("the data set size must be >= 0, got ", r.num_examples));
  }
  if (r.workers < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("the number of workers must be >= 1, got ", r.workers));
  }
  if (r.index < 0 || r.index >= r.workers) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker index ", r.index, " is out of range for ", r.workers,
                     " workers (expected 0 <= index < ", r.workers, ")"));
  }
  if (r.epoch < 0) {
    return absl::InvalidArgumentError(absl::StrCat("the epoch must be >= 0, got ", r.epoch));
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<int64_t> EpochPermutation(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> perm(n);
  for (int64_t i = 0; i < n; ++i) perm[i] = i;
  const std::array<uint32_t, 2> key = Key(seed, kPermutationTag);
  const auto e = static_cast<uint64_t>(epoch);
  for (int64_t i = n - 1; i > 0; --i) {
    const int64_t j = Uniform(key, static_cast<uint64_t>(i), static_cast<uint32_t>(e),
                              static_cast<uint32_t>(e >> 32), i + 1);
    std::swap(perm[i], perm[j]);
  }
  return perm;
}

absl::StatusOr<std::pair<int64_t, int64_t>> ContiguousPart(int64_t n, int64_t parts,
                                                           int64_t index) {
  if (n < 0 || parts < 1 || index < 0 || index >= parts) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot take part ", index, " of ", parts, " of ", n, " items"));
  }
  const int64_t base = n / parts, extra = n % parts;
  const int64_t begin = index * base + std::min(index, extra);
  return std::make_pair(begin, begin + base + (index < extra ? 1 : 0));
}

absl::StatusOr<std::vector<int64_t>> ShuffleSplit(const PartitionRequest& r) {
  if (absl::Status s = Check(r); !s.ok()) return s;
  absl::StatusOr<std::pair<int64_t, int64_t>> part =
      ContiguousPart(r.num_examples, r.workers, r.index);
  if (!part.ok()) return part.status();
  const std::vector<int64_t> perm = EpochPermutation(r.num_examples, r.seed, r.epoch);
  return std::vector<int64_t>(perm.begin() + part->first, perm.begin() + part->second);
}

absl::StatusOr<std::vector<int64_t>> Bootstrap(const PartitionRequest& r, int64_t count) {
  if (absl::Status s = Check(r); !s.ok()) return s;
  if (count < 0) {
    return absl::InvalidArgumentError(absl::StrCat("the sample size must be >= 0, got ", count));
  }
  if (r.num_examples == 0 && count > 0) {
    return absl::InvalidArgumentError("cannot draw examples from an empty data set");
  }
  const std::array<uint32_t, 2> key = Key(r.seed, kBootstrapTag);
  std::vector<int64_t> out(count);
  for (int64_t k = 0; k < count; ++k) {
    out[k] = Uniform(key, static_cast<uint64_t>(k), static_cast<uint32_t>(r.index),
                     static_cast<uint32_t>(r.epoch), r.num_examples);
  }
  return out;
}

absl::StatusOr<std::pair<int64_t, int64_t>> FeatureRange(const PartitionRequest& r) {
  if (absl::Status s = Check(r); !s.ok()) return s;
  if (r.num_examples < r.workers) {
    return absl::InvalidArgumentError(absl::StrCat("cannot split ", r.num_examples,
                                                   " columns over ", r.workers,
                                                   " workers: each needs at least one"));
  }
  return ContiguousPart(r.num_examples, r.workers, r.index);
}

}  // namespace sluice
