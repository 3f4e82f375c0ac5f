#include "ops/collectives.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/status.h"
#include "ops/array_ops.h"
#include "ops/base_ops.h"
#include "ops/math_ops.h"

namespace sluice {
namespace ops {
namespace {

// The checks every collective shares: one device per input, distinct, known shapes.
absl::Status CheckGroup(const std::vector<Output>& inputs, const std::vector<std::string>& devices,
                        bool same_shape, const char* what) {
  if (inputs.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": an empty group"));
  if (inputs.size() != devices.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": ", inputs.size(), " inputs but ", devices.size(), " devices"));
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].valid()) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": input ", i, " is not valid"));
    }
    for (size_t j = 0; j < i; ++j) {
      if (devices[i] == devices[j]) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": members ", j, " and ", i, " are both on ", devices[i]));
      }
    }
    const TensorShape& s = inputs[i].shape();
    const TensorShape& s0 = inputs[0].shape();
    if (!s.IsFullyDefined()) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": input ", i, " (", inputs[i].name(),
                                                     ") has shape ", s.DebugString(),
                                                     ", not fully defined"));
    }
    bool ok = inputs[i].dtype() == inputs[0].dtype();
    if (same_shape) {
      ok = ok && s == s0;
    } else {
      ok = ok && s.rank() == s0.rank() && s.rank() >= 1;
      for (int d = 1; ok && d < s.rank(); ++d) ok = s.dim(d) == s0.dim(d);
    }
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": input ", i, " (", inputs[i].name(), ", ", DTypeName(inputs[i].dtype()), " ",
          s.DebugString(), ") does not match input 0 (", DTypeName(inputs[0].dtype()), " ",
          s0.DebugString(), ")", same_shape ? "" : " beyond dimension 0"));
    }
  }
  return absl::OkStatus();
}

Output Combine(const Scope& s, ReduceOp op, const Output& a, const Output& b) {
  return op == ReduceOp::kMax ? Maximum(s, a, b) : Add(s, a, b);
}

// The chunk boundaries of n near-equal contiguous parts of `size` elements.
std::vector<int64_t> Bounds(int64_t size, int n) {
  std::vector<int64_t> b(n + 1, 0);
  for (int c = 0; c < n; ++c) b[c + 1] = b[c] + size / n + (c < size % n ? 1 : 0);
  return b;
}

// The reduce-scatter phase of the ring: chunk[d][c] are member d's chunks; afterwards member d
// holds the fully reduced chunk (d + 1) mod n. Returns, per member, that chunk.
std::vector<Output> RingReduceScatter(const Scope& scope, std::vector<std::vector<Output>> chunk,
                                      const std::vector<std::string>& devices, ReduceOp op) {
  const int n = static_cast<int>(devices.size());
  for (int step = 0; step < n - 1; ++step) {
    std::vector<std::vector<Output>> next = chunk;
    for (int d = 0; d < n; ++d) {
      // Member d passes chunk (d - step) to member d + 1, which folds it into its own.
      const int c = ((d - step) % n + n) % n;
      const int r = (d + 1) % n;
      const Scope on_r = scope.WithDevice(devices[r]);
      next[r][c] = Combine(on_r, op, chunk[r][c], chunk[d][c]);
    }
    chunk = std::move(next);
  }
  std::vector<Output> mine(n);
  for (int d = 0; d < n; ++d) mine[d] = chunk[d][(d + 1) % n];
  return mine;
}

// The all-gather phase: member d starts with piece `have[d]` at index (d + 1 + shift) mod n and
// passes pieces around the ring; returns every member's n pieces in index order.
std::vector<std::vector<Output>> RingAllGather(const Scope& scope, const std::vector<Output>& have,
                                               const std::vector<std::string>& devices, int shift) {
  const int n = static_cast<int>(devices.size());
  std::vector<std::vector<Output>> piece(n, std::vector<Output>(n));
  for (int d = 0; d < n; ++d) piece[d][(d + 1 + shift) % n] = have[d];
  for (int step = 0; step < n - 1; ++step) {
    std::vector<std::vector<Output>> next = piece;
    for (int d = 0; d < n; ++d) {
      const int c = ((d + 1 + shift - step) % n + n) % n;  // The piece d got last.
      const int r = (d + 1) % n;
      next[r][c] = Identity(scope.WithDevice(devices[r]), piece[d][c]);
    }
    piece = std::move(next);
  }
  return piece;
}

// Each member's input, flattened and cut into n near-equal chunks, on its device.
std::vector<std::vector<Output>> Chunks(const Scope& scope, const std::vector<Output>& inputs,
                                        const std::vector<std::string>& devices) {
  const int n = static_cast<int>(devices.size());
  const std::vector<int64_t> b = Bounds(inputs[0].shape().num_elements(), n);
  std::vector<std::vector<Output>> chunk(n, std::vector<Output>(n));
  for (int d = 0; d < n; ++d) {
    const Scope on_d = scope.WithDevice(devices[d]);
    Output flat = Reshape(on_d, inputs[d], Tensor::FromVector<int64_t>({b[n]}));
    for (int c = 0; c < n; ++c) {
      chunk[d][c] = Slice(on_d, flat, Tensor::FromVector<int64_t>({b[c]}),
                          Tensor::FromVector<int64_t>({b[c + 1] - b[c]}));
    }
  }
  return chunk;
}

Output ScaleForMean(const Scope& s, const Output& x, int n) {
  if (x.dtype() == DType::kFloat64) return Mul(s, x, Tensor::Scalar<double>(1.0 / n));
  return Mul(s, x, Tensor::Scalar<float>(1.0f / static_cast<float>(n)));
}

// A ring all-reduce of inputs flattened into n chunks; each member's result reshaped back.
std::vector<Output> RingAllReduce(const Scope& s, const std::vector<Output>& inputs,
                                  const std::vector<std::string>& devices, ReduceOp op) {
  const int n = static_cast<int>(devices.size());
  std::vector<Output> reduced = RingReduceScatter(s, Chunks(s, inputs, devices), devices, op);
  if (op == ReduceOp::kMean) {
    for (int d = 0; d < n; ++d) {
      reduced[d] = ScaleForMean(s.WithDevice(devices[d]), reduced[d], n);
    }
  }
  std::vector<std::vector<Output>> pieces = RingAllGather(s, reduced, devices, 0);
  std::vector<Output> out(n);
  const Tensor shape = Tensor::FromVector<int64_t>(inputs[0].shape().dims());
  for (int d = 0; d < n; ++d) {
    const Scope on_d = s.WithDevice(devices[d]);
    out[d] = Reshape(
        on_d, n == 1 ? pieces[d][0] : Concat(on_d, pieces[d], Tensor::Scalar<int32_t>(0)), shape);
  }
  return out;
}

// Recursive doubling: with p the largest power of two <= n and r = n - p, members 2k (k < r)
// first hand their tensor to member 2k + 1 and sit out; the p others exchange the whole tensor
// with partner j XOR 2^round (j their rank among the p) for log2 p rounds, folding in what
// they receive; then the r who sat out get the result back. Partners fold the same two values
// in the two orders, equal for + and max, so every member ends with the same bits.
std::vector<Output> RecursiveDoublingAllReduce(const Scope& s, std::vector<Output> v,
                                               const std::vector<std::string>& devices,
                                               ReduceOp op) {
  const int n = static_cast<int>(devices.size());
  int p = 1;
  while (p * 2 <= n) p *= 2;
  const int r = n - p;
  std::vector<int> active;  // Member index of each of the p ranks.
  for (int k = 0; k < r; ++k) {
    v[2 * k + 1] = Combine(s.WithDevice(devices[2 * k + 1]), op, v[2 * k + 1], v[2 * k]);
    active.push_back(2 * k + 1);
  }
  for (int d = 2 * r; d < n; ++d) active.push_back(d);
  for (int dist = 1; dist < p; dist *= 2) {
    std::vector<Output> next = v;
    for (int j = 0; j < p; ++j) {
      const int me = active[j];
      const int partner = active[j ^ dist];
      next[me] = Combine(s.WithDevice(devices[me]), op, v[me], v[partner]);
    }
    v = std::move(next);
  }
  for (int k = 0; k < r; ++k) v[2 * k] = Identity(s.WithDevice(devices[2 * k]), v[2 * k + 1]);
  for (int d = 0; d < n; ++d) {
    const Scope on_d = s.WithDevice(devices[d]);
    v[d] = op == ReduceOp::kMean ? ScaleForMean(on_d, v[d], n) : Identity(on_d, v[d]);
  }
  return v;
}

// Predicted seconds of each algorithm: every hop costs kHopSeconds plus its bytes at
// kBytesPerSecond (measured on loopback, docs/collectives.md).
constexpr double kHopSeconds = 400e-6;
constexpr double kBytesPerSecond = 1e9;

double RingSeconds(double bytes, int n) {
  return 2.0 * (n - 1) * (kHopSeconds + bytes / n / kBytesPerSecond);
}

double RecursiveDoublingSeconds(double bytes, int n) {
  int p = 1, rounds = 0;
  while (p * 2 <= n) {
    p *= 2;
    ++rounds;
  }
  // Members beyond p: their hop in overlaps the first exchange, their hop out adds one.
  if (p < n) rounds += 1;
  return rounds * (kHopSeconds + bytes / kBytesPerSecond);
}

absl::Status CheckReducible(const std::vector<Output>& inputs, const char* what) {
  const DType t = inputs[0].dtype();
  if (t == DType::kFloat32 || t == DType::kFloat64) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(what, ": reduces float32 or float64 tensors, got ", DTypeName(t)));
}

}  // namespace

absl::StatusOr<ReduceOp> ParseReduceOp(const std::string& name) {
  if (name == "sum") return ReduceOp::kSum;
  if (name == "mean") return ReduceOp::kMean;
  if (name == "max") return ReduceOp::kMax;
  return absl::InvalidArgumentError(
      absl::StrCat("reduction '", name, "' is not one of sum, mean, max"));
}

absl::StatusOr<std::vector<Output>> ReduceScatter(const Scope& scope,
                                                  const std::vector<Output>& inputs,
                                                  const std::vector<std::string>& devices,
                                                  ReduceOp op) {
  SLUICE_RETURN_IF_ERROR(CheckGroup(inputs, devices, true, "ReduceScatter"));
  SLUICE_RETURN_IF_ERROR(CheckReducible(inputs, "ReduceScatter"));
  const Scope s = scope.NewSubScope("ReduceScatter");
  const int n = static_cast<int>(devices.size());
  // The ring leaves chunk k + 1 on ring position k: put member k + 1 there, so that member d
  // ends with chunk d.
  std::vector<Output> ring_inputs(n);
  std::vector<std::string> ring_devices(n);
  for (int k = 0; k < n; ++k) {
    ring_inputs[k] = inputs[(k + 1) % n];
    ring_devices[k] = devices[(k + 1) % n];
  }
  std::vector<Output> mine =
      RingReduceScatter(s, Chunks(s, ring_inputs, ring_devices), ring_devices, op);
  std::vector<Output> out(n);
  for (int k = 0; k < n; ++k) out[(k + 1) % n] = mine[k];
  if (op == ReduceOp::kMean) {
    for (int d = 0; d < n; ++d) out[d] = ScaleForMean(s.WithDevice(devices[d]), out[d], n);
  }
  SLUICE_RETURN_IF_ERROR(s.status());
  return out;
}

absl::StatusOr<AllReduceAlgorithm> ParseAllReduceAlgorithm(const std::string& name) {
  if (name == "auto") return AllReduceAlgorithm::kAuto;
  if (name == "ring") return AllReduceAlgorithm::kRing;
  if (name == "recursive_doubling") return AllReduceAlgorithm::kRecursiveDoubling;
  return absl::InvalidArgumentError(absl::StrCat("all-reduce algorithm '", name,
                                                 "' is not one of auto, ring, recursive_doubling"));
}

AllReduceAlgorithm ChooseAllReduceAlgorithm(int64_t bytes, int members) {
  const double b = static_cast<double>(bytes);
  return RecursiveDoublingSeconds(b, members) <= RingSeconds(b, members)
             ? AllReduceAlgorithm::kRecursiveDoubling
             : AllReduceAlgorithm::kRing;
}

absl::StatusOr<std::vector<Output>> AllReduce(const Scope& scope, const std::vector<Output>& inputs,
                                              const std::vector<std::string>& devices, ReduceOp op,
                                              AllReduceAlgorithm algorithm) {
  SLUICE_RETURN_IF_ERROR(CheckGroup(inputs, devices, true, "AllReduce"));
  SLUICE_RETURN_IF_ERROR(CheckReducible(inputs, "AllReduce"));
  const Scope s = scope.NewSubScope("AllReduce");
  const int n = static_cast<int>(devices.size());
  if (algorithm == AllReduceAlgorithm::kAuto) {
    const int64_t bytes = inputs[0].shape().num_elements() * DTypeSize(inputs[0].dtype());
    algorithm = ChooseAllReduceAlgorithm(bytes, n);
  }
  std::vector<Output> out = algorithm == AllReduceAlgorithm::kRing
                                ? RingAllReduce(s, inputs, devices, op)
                                : RecursiveDoublingAllReduce(s, inputs, devices, op);
  SLUICE_RETURN_IF_ERROR(s.status());
  return out;
}

std::vector<std::vector<int>> PlanBuckets(const std::vector<Output>& tensors,
                                          int64_t bucket_bytes) {
  std::vector<std::vector<int>> buckets;
  int64_t filled = 0;
  for (int k = 0; k < static_cast<int>(tensors.size()); ++k) {
    const int64_t bytes = tensors[k].shape().num_elements() * DTypeSize(tensors[k].dtype());
    const bool fits = !buckets.empty() && filled + bytes <= bucket_bytes &&
                      tensors[buckets.back().front()].dtype() == tensors[k].dtype();
    if (!fits) {
      buckets.emplace_back();
      filled = 0;
    }
    buckets.back().push_back(k);
    filled += bytes;
  }
  return buckets;
}

absl::StatusOr<std::vector<std::vector<Output>>> AllReduceInBuckets(
    const Scope& scope, const std::vector<std::vector<Output>>& tensors,
    const std::vector<std::string>& devices, ReduceOp op, int64_t bucket_bytes,
    AllReduceAlgorithm algorithm) {
  const int n = static_cast<int>(devices.size());
  if (static_cast<int>(tensors.size()) != n || n == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("AllReduceInBuckets: ", tensors.size(), " tensor lists for ", n, " devices"));
  }
  for (int d = 0; d < n; ++d) {
    if (tensors[d].size() != tensors[0].size()) {
      return absl::InvalidArgumentError(absl::StrCat("AllReduceInBuckets: member ", d, " has ",
                                                     tensors[d].size(), " tensors, member 0 has ",
                                                     tensors[0].size()));
    }
  }
  const int count = static_cast<int>(tensors[0].size());
  for (int k = 0; k < count; ++k) {
    std::vector<Output> group(n);
    for (int d = 0; d < n; ++d) group[d] = tensors[d][k];
    SLUICE_RETURN_IF_ERROR(CheckGroup(group, devices, true, "AllReduceInBuckets"));
    SLUICE_RETURN_IF_ERROR(CheckReducible(group, "AllReduceInBuckets"));
  }
  const Scope s = scope.NewSubScope("AllReduceInBuckets");
  std::vector<std::vector<Output>> out(n, std::vector<Output>(count));
  for (const std::vector<int>& bucket : PlanBuckets(tensors[0], bucket_bytes)) {
    // Each member's bucket: its tensors flattened, end to end.
    std::vector<int64_t> offset = {0};
    for (int k : bucket) offset.push_back(offset.back() + tensors[0][k].shape().num_elements());
    std::vector<Output> packed(n);
    for (int d = 0; d < n; ++d) {
      const Scope on_d = s.WithDevice(devices[d]);
      std::vector<Output> flat;
      for (int k : bucket) {
        flat.push_back(
            Reshape(on_d, tensors[d][k],
                    Tensor::FromVector<int64_t>({tensors[0][k].shape().num_elements()})));
      }
      packed[d] = flat.size() == 1 ? flat[0] : Concat(on_d, flat, Tensor::Scalar<int32_t>(0));
    }
    SLUICE_ASSIGN_OR_RETURN(std::vector<Output> reduced,
                            AllReduce(s, packed, devices, op, algorithm));
    for (int d = 0; d < n; ++d) {
      const Scope on_d = s.WithDevice(devices[d]);
      for (size_t j = 0; j < bucket.size(); ++j) {
        const Output& like = tensors[0][bucket[j]];
        Output piece = bucket.size() == 1
                           ? reduced[d]
                           : Slice(on_d, reduced[d], Tensor::FromVector<int64_t>({offset[j]}),
                                   Tensor::FromVector<int64_t>({offset[j + 1] - offset[j]}));
        out[d][bucket[j]] = Reshape(on_d, piece, Tensor::FromVector<int64_t>(like.shape().dims()));
      }
    }
  }
  SLUICE_RETURN_IF_ERROR(s.status());
  return out;
}

absl::StatusOr<std::vector<Output>> AllGather(const Scope& scope, const std::vector<Output>& inputs,
                                              const std::vector<std::string>& devices) {
  SLUICE_RETURN_IF_ERROR(CheckGroup(inputs, devices, false, "AllGather"));
  const Scope s = scope.NewSubScope("AllGather");
  const int n = static_cast<int>(devices.size());
  // Member d's own input is piece d: shift the ring's starting index by -1.
  std::vector<std::vector<Output>> pieces = RingAllGather(s, inputs, devices, n - 1);
  std::vector<Output> out(n);
  for (int d = 0; d < n; ++d) {
    const Scope on_d = s.WithDevice(devices[d]);
    out[d] =
        n == 1 ? Identity(on_d, pieces[d][0]) : Concat(on_d, pieces[d], Tensor::Scalar<int32_t>(0));
  }
  SLUICE_RETURN_IF_ERROR(s.status());
  return out;
}

absl::StatusOr<std::vector<Output>> Broadcast(const Scope& scope, const Output& value, int root,
                                              const std::vector<std::string>& devices) {
  const int n = static_cast<int>(devices.size());
  if (root < 0 || root >= n) {
    return absl::InvalidArgumentError(
        absl::StrCat("Broadcast: root ", root, " is not a member of a group of ", n));
  }
  SLUICE_RETURN_IF_ERROR(CheckGroup(std::vector<Output>(n, value), devices, true, "Broadcast"));
  const Scope s = scope.NewSubScope("Broadcast");
  // A chain from the root: each member forwards what it received to the next.
  std::vector<Output> out(n);
  Output last = value;
  for (int k = 0; k < n; ++k) {
    const int d = (root + k) % n;
    last = Identity(s.WithDevice(devices[d]), last);
    out[d] = last;
  }
  SLUICE_RETURN_IF_ERROR(s.status());
  return out;
}

std::string CollectiveScopeOf(const std::string& node_name) {
  size_t start = 0;
  while (start < node_name.size()) {
    size_t end = node_name.find('/', start);
    if (end == std::string::npos) return "";  // The last component is the node's own name.
    absl::string_view part(node_name.data() + start, end - start);
    // A scope made twice gets a suffix: "AllReduce_1".
    const size_t under = part.rfind('_');
    if (under != absl::string_view::npos && under + 1 < part.size() &&
        std::all_of(part.begin() + under + 1, part.end(), absl::ascii_isdigit)) {
      part = part.substr(0, under);
    }
    for (const char* scope :
         {"AllReduce", "ReduceScatter", "AllGather", "Broadcast", "AllReduceInBuckets"}) {
      if (part == scope) return node_name.substr(0, end);
    }
    start = end + 1;
  }
  return "";
}

}  // namespace ops
}  // namespace sluice
