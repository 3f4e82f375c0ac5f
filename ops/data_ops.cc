#include "ops/data_ops.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/status.h"
#include "graph/shape_inference.h"
#include "ops/op_builder.h"
#include "ops/sampling.h"

namespace sluice {
namespace {

class ShardBatchIndicesOp : public OpKernel {
 public:
  explicit ShardBatchIndicesOp(const Node& node)
      : OpKernel(node),
        request_{.num_examples = Attr<int64_t>("num_examples"),
                 .workers = Attr<int64_t>("workers"),
                 .index = Attr<int64_t>("index"),
                 .seed = static_cast<uint64_t>(Attr<int64_t>("seed"))},
        batch_size_(Attr<int64_t>("batch_size")),
        mode_(Attr<std::string>("mode")),
        sample_size_(Attr<int64_t>("sample_size")),
        drop_remainder_(Attr<bool>("drop_remainder")) {}

  absl::Status Compute(OpKernelContext* ctx) override {
    SLUICE_RETURN_IF_ERROR(CheckAttributes());
    std::vector<int64_t> batch;
    int64_t epoch;
    {
      absl::MutexLock lock(&mu_);
      // Move to the next epoch while this one has no (full, if required) batch left. An epoch
      // with no rows for this worker at all can only repeat: refuse rather than spin.
      for (int tries = 0;; ++tries) {
        const int64_t left = static_cast<int64_t>(rows_.size()) - offset_;
        if (loaded_ && left > 0 && (left >= batch_size_ || !drop_remainder_)) break;
        if (tries == 2) {
          return absl::InvalidArgumentError(absl::StrCat(
              "worker ", request_.index, " of ", request_.workers, " gets ", rows_.size(), " of ",
              request_.num_examples, " examples an epoch, less than one batch of ", batch_size_,
              " with drop_remainder"));
        }
        if (loaded_) ++epoch_;
        request_.epoch = epoch_;
        absl::StatusOr<std::vector<int64_t>> rows =
            mode_ == "shuffle_split" ? ShuffleSplit(request_) : Bootstrap(request_, SampleSize());
        SLUICE_RETURN_IF_ERROR(rows.status());
        rows_ = *std::move(rows);
        offset_ = 0;
        loaded_ = true;
      }
      const int64_t take = std::min<int64_t>(batch_size_, rows_.size() - offset_);
      batch.assign(rows_.begin() + offset_, rows_.begin() + offset_ + take);
      offset_ += take;
      epoch = epoch_;
    }
    ctx->set_output(0, Tensor::FromVector<int64_t>(batch));
    ctx->set_output(1, Tensor::Scalar<int64_t>(epoch));
    return absl::OkStatus();
  }

  bool IsExpensive() const override { return false; }

 private:
  int64_t SampleSize() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return sample_size_ > 0 ? sample_size_ : request_.num_examples / request_.workers;
  }

  absl::Status CheckAttributes() const {
    if (batch_size_ < 1) {
      return absl::InvalidArgumentError(absl::StrCat("batch_size must be >= 1, got ", batch_size_));
    }
    if (mode_ != "shuffle_split" && mode_ != "with_replacement") {
      return absl::InvalidArgumentError(
          absl::StrCat("mode '", mode_, "' is not one of shuffle_split, with_replacement"));
    }
    if (sample_size_ < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("sample_size must be >= 0, got ", sample_size_));
    }
    return absl::OkStatus();  // num_examples, workers and index: checked by ops/sampling.
  }

  absl::Mutex mu_;
  PartitionRequest request_ ABSL_GUARDED_BY(mu_);
  const int64_t batch_size_;
  const std::string mode_;
  const int64_t sample_size_;
  const bool drop_remainder_;
  bool loaded_ ABSL_GUARDED_BY(mu_) = false;
  int64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<int64_t> rows_ ABSL_GUARDED_BY(mu_);  // This worker's rows of epoch_.
  int64_t offset_ ABSL_GUARDED_BY(mu_) = 0;         // The next row of rows_ to hand out.
};

}  // namespace

absl::Status RegisterDataOps(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(ops->Register(
      OpDefBuilder("ShardBatchIndices")
          .Output("indices: int64")
          .Output("epoch: int64")
          .Attr("num_examples: int")
          .Attr("workers: int")
          .Attr("index: int")
          .Attr("batch_size: int")
          .Attr("mode: string = \"shuffle_split\"")
          .Attr("sample_size: int = 0")
          .Attr("seed: int = 0")
          .Attr("drop_remainder: bool = false")
          .SetIsStateful()
          .Doc("The row indices of this worker's next batch and their epoch: shuffle_split "
               "shards each epoch's permutation over the workers (every example once per epoch "
               "across them), with_replacement draws sample_size rows per epoch (ops/data_ops.h).")
          .SetShapeFn([](InferenceContext* c) {
            c->set_output(0, TensorShape({kUnknownDim}));
            c->set_output(1, TensorShape());
            return absl::OkStatus();
          })));
  return kernels->Register("ShardBatchIndices", kDeviceCpu, DType::kInvalid,
                           MakeKernel<ShardBatchIndicesOp>);
}

namespace ops {

Output ShardBatchIndices(const Scope& scope, const ShardBatchOptions& o, Output* epoch,
                         SourceLocation loc) {
  const Node* node = BuildNode(scope, "ShardBatchIndices", {},
                               {{"num_examples", AttrValue(o.num_examples)},
                                {"workers", AttrValue(o.workers)},
                                {"index", AttrValue(o.index)},
                                {"batch_size", AttrValue(o.batch_size)},
                                {"mode", AttrValue(o.mode)},
                                {"sample_size", AttrValue(o.sample_size)},
                                {"seed", AttrValue(o.seed)},
                                {"drop_remainder", AttrValue(o.drop_remainder)}},
                               loc);
  if (epoch != nullptr) *epoch = node ? Output(node, 1) : Output();
  return SingleOutput(node);
}

}  // namespace ops
}  // namespace sluice
