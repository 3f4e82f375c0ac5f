// Collective operations over a group of devices, built into the graph when it is built (TF's
// collective ops are the model: the group and the order of every transfer are fixed then, so
// nothing is negotiated at run time). Each returns one output per member, on that member's
// device; the partitioner turns every edge between members into a Send/Recv pair, so the
// transfers go over the data plane under credits like any other edge, and a lost member fails
// the step like any other lost peer.
//
//   AllReduce      every member gets op(inputs) (sum, mean or max), by one of two algorithms
//                  a cost model picks from the size and the group (ChooseAllReduceAlgorithm):
//                  a ring (reduce-scatter then all-gather over n near-equal chunks of the
//                  flattened tensor, 2(n-1) sequential hops, each member sending 2(n-1)/n of
//                  the tensor's bytes: the bandwidth bound of TRAINING.md section 4) or
//                  recursive doubling (log2 n exchanges of the whole tensor with a partner
//                  d XOR 2^k, plus one hop in and out for members beyond the largest power of
//                  two: fewest hops, for small tensors)
//   AllReduceInBuckets  many tensors per member (gradients) packed into buckets of about
//                  `bucket_bytes`, fixed here, one AllReduce per bucket: each bucket's
//                  collective can start as soon as its own tensors exist
//   ReduceScatter  member i gets chunk i of op(inputs) (flattened, n near-equal chunks)
//   AllGather      every member gets the inputs concatenated along dimension 0, in member order
//   Broadcast      every member gets the root member's input
// Inputs must have one fully defined shape (AllGather: equal beyond dimension 0) and a dtype the
// reduction supports; `devices` are the members' devices, one per input, distinct. Errors name
// the member and the shapes. Builders are used from one thread, like Scope.
//
//   SLUICE_ASSIGN_OR_RETURN(std::vector<Output> summed,
//       ops::AllReduce(s, {g0, g1}, {"/job:worker/task:0", "/job:worker/task:1"},
//                      ops::ReduceOp::kMean));
#ifndef SLUICE_OPS_COLLECTIVES_H_
#define SLUICE_OPS_COLLECTIVES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "graph/scope.h"

namespace sluice {
namespace ops {

enum class ReduceOp { kSum, kMean, kMax };
enum class AllReduceAlgorithm { kAuto, kRing, kRecursiveDoubling };

// "sum", "mean", "max".
absl::StatusOr<ReduceOp> ParseReduceOp(const std::string& name);
// "auto", "ring", "recursive_doubling".
absl::StatusOr<AllReduceAlgorithm> ParseAllReduceAlgorithm(const std::string& name);

// The cost model behind kAuto: a hop costs a fixed latency plus its bytes over the bandwidth
// (constants measured with bench/allreduce_bench.py, docs/collectives.md); returns whichever of
// the ring and recursive doubling is predicted faster for `bytes` over `members`.
AllReduceAlgorithm ChooseAllReduceAlgorithm(int64_t bytes, int members);

absl::StatusOr<std::vector<Output>> AllReduce(
    const Scope& scope, const std::vector<Output>& inputs, const std::vector<std::string>& devices,
    ReduceOp op, AllReduceAlgorithm algorithm = AllReduceAlgorithm::kAuto);

// Which tensors share a bucket: consecutive runs of `tensors` (in the order given: the order
// they are produced in) of one dtype, closed before the bytes would pass `bucket_bytes` (a
// tensor bigger than that is a bucket of its own). Returns index lists.
std::vector<std::vector<int>> PlanBuckets(const std::vector<Output>& tensors, int64_t bucket_bytes);

// tensors[d][k] is member d's k-th tensor (shapes and dtypes equal across members); returns
// out[d][k] = op over the members of tensors[.][k], on member d's device. Each bucket of
// PlanBuckets(tensors[0], bucket_bytes) is flattened, concatenated, all-reduced with
// `algorithm` (kAuto: chosen by the bucket's size) and split back.
absl::StatusOr<std::vector<std::vector<Output>>> AllReduceInBuckets(
    const Scope& scope, const std::vector<std::vector<Output>>& tensors,
    const std::vector<std::string>& devices, ReduceOp op, int64_t bucket_bytes,
    AllReduceAlgorithm algorithm = AllReduceAlgorithm::kAuto);
absl::StatusOr<std::vector<Output>> ReduceScatter(const Scope& scope,
                                                  const std::vector<Output>& inputs,
                                                  const std::vector<std::string>& devices,
                                                  ReduceOp op);
absl::StatusOr<std::vector<Output>> AllGather(const Scope& scope, const std::vector<Output>& inputs,
                                              const std::vector<std::string>& devices);
absl::StatusOr<std::vector<Output>> Broadcast(const Scope& scope, const Output& value, int root,
                                              const std::vector<std::string>& devices);

// The name scope of the outermost collective a node of a built graph belongs to
// ("bsp/AllReduceInBuckets" for "bsp/AllReduceInBuckets/AllReduce/Add_3"), or "" for a node of
// none: errors about a lost member name the collectives it was in.
std::string CollectiveScopeOf(const std::string& node_name);

}  // namespace ops
}  // namespace sluice

#endif  // SLUICE_OPS_COLLECTIVES_H_
