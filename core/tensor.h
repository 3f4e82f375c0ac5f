// Tensor: a typed, shaped view of a ref-counted, 64-byte-aligned buffer.
//
// Copying a Tensor is cheap (it shares the buffer); Slice() returns a view of a range of the
// first dimension that shares storage too. Element access goes through zero-copy Eigen maps.
// Thread-safety: a Tensor object is a value; concurrent readers of one buffer are fine, and
// writers must own the buffer exclusively (see RefCountIsOne()).
//
//   Tensor t(DType::kFloat32, TensorShape({2, 3}));
//   t.matrix<float>().setZero();
//   Tensor row = t.Slice(1, 2);          // shape [1,3], same storage
//   Tensor v = Tensor::FromVector<float>({1, 2, 3}, TensorShape({3}));
#ifndef SLUICE_CORE_TENSOR_H_
#define SLUICE_CORE_TENSOR_H_

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/dtype.h"
#include "core/tensor_shape.h"
// Kernels evaluate on Eigen::ThreadPoolDevice; the define must precede every Eigen include.
#define EIGEN_USE_THREADS
#include "unsupported/Eigen/CXX11/Tensor"

namespace sluice {

inline constexpr size_t kTensorAlignment = 64;

// A bound on the bytes of live tensors charged to it: a session's tensors on one worker. Made
// by std::make_shared: the buffers charged hold it (shared_from_this), so it outlives them, and
// each gives its bytes back when freed; steps and kernels only borrow it. Thread-safe.
//
//   auto budget = std::make_shared<MemoryBudget>("session 's1' on /job:worker/task:0", 1 << 30);
//   SLUICE_ASSIGN_OR_RETURN(Tensor t, Tensor::Allocate(DType::kFloat32, shape, budget.get()));
class MemoryBudget : public std::enable_shared_from_this<MemoryBudget> {
 public:
  MemoryBudget(std::string owner, int64_t limit_bytes)
      : owner_(std::move(owner)), limit_(limit_bytes) {}
  // ResourceExhausted naming the owner, what it holds and the limit when `bytes` more would
  // pass it; nothing is charged then.
  absl::Status Charge(int64_t bytes);
  void Release(int64_t bytes) { used_.fetch_sub(bytes, std::memory_order_relaxed); }
  int64_t used() const { return used_.load(std::memory_order_relaxed); }
  int64_t limit() const { return limit_; }

 private:
  const std::string owner_;
  const int64_t limit_;
  std::atomic<int64_t> used_{0};
};

// Owns one aligned allocation. Shared between tensors through std::shared_ptr. Large buffers
// (1 MiB and up) are recycled through a bounded process-wide cache (512 MiB) instead of going
// back to malloc, so steps that allocate the same large sizes do not page-fault them again.
// Thread-safe.
class TensorBuffer {
 public:
  explicit TensorBuffer(size_t bytes);
  ~TensorBuffer();
  TensorBuffer(const TensorBuffer&) = delete;
  TensorBuffer& operator=(const TensorBuffer&) = delete;

  void* data() const { return data_; }
  size_t size() const { return size_; }
  // Gives size() back to `budget` (already charged) when the buffer is freed.
  void ChargedTo(std::shared_ptr<MemoryBudget> budget) { budget_ = std::move(budget); }

 private:
  void* data_;
  size_t size_;
  std::shared_ptr<MemoryBudget> budget_;
};

template <typename T, int N>
using TensorMapT = Eigen::TensorMap<Eigen::Tensor<T, N, Eigen::RowMajor, Eigen::DenseIndex>>;
template <typename T, int N>
using ConstTensorMapT =
    Eigen::TensorMap<Eigen::Tensor<const T, N, Eigen::RowMajor, Eigen::DenseIndex>>;

class Tensor {
 public:
  // An empty float32 scalar with no buffer (IsInitialized() is false).
  Tensor() = default;
  // Allocates an uninitialised buffer; `shape` must be fully defined and small enough to
  // address (the process aborts on a shape whose size overflows; an allocation failure throws
  // std::bad_alloc). Sizes that come from users or the wire go through Allocate instead.
  Tensor(DType dtype, const TensorShape& shape);
  // The checked constructor: InvalidArgument when `shape` is not fully defined or its byte size
  // overflows, ResourceExhausted naming dtype, shape and bytes when the memory is not there.
  // With a `budget`, the bytes are charged to it first (its ResourceExhausted when they do not
  // fit) and given back when the buffer is freed.
  static absl::StatusOr<Tensor> Allocate(DType dtype, const TensorShape& shape,
                                         MemoryBudget* budget = nullptr);
  // Bytes a tensor of `shape` needs (checked: InvalidArgument on an undefined or overflowing
  // shape), for checking what a message carries before allocating what it announces.
  static absl::StatusOr<size_t> CheckedBytes(DType dtype, const TensorShape& shape);

  template <typename T>
  static Tensor Scalar(T value) {
    Tensor t(DTypeOf<T>::value, TensorShape());
    *t.data<T>() = value;
    return t;
  }
  // `values` must hold exactly shape.num_elements() values (the process aborts otherwise).
  template <typename T>
  static Tensor FromVector(const std::vector<T>& values, const TensorShape& shape);
  template <typename T>
  static Tensor FromVector(const std::vector<T>& values) {
    return FromVector(values, TensorShape({static_cast<int64_t>(values.size())}));
  }

  bool IsInitialized() const { return buffer_ != nullptr || num_elements() == 0; }
  DType dtype() const { return dtype_; }
  const TensorShape& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  int64_t dim(int i) const { return shape_.dim(i); }
  int64_t num_elements() const { return num_elements_; }
  size_t TotalBytes() const { return num_elements_ * DTypeSize(dtype_); }

  template <typename T>
  T* data() const {
    return reinterpret_cast<T*>(raw_data());
  }
  void* raw_data() const {
    return buffer_ ? static_cast<char*>(buffer_->data()) + offset_ : nullptr;
  }

  template <typename T>
  TensorMapT<T, 1> flat() const {
    return TensorMapT<T, 1>(data<T>(), num_elements_);
  }
  template <typename T>
  TensorMapT<T, 2> matrix() const {
    return tensor<T, 2>();
  }
  // A rank-N view; aborts (a programming error) when the tensor's rank is not N.
  template <typename T, int N>
  TensorMapT<T, N> tensor() const {
    if (shape_.rank() != N) DieRankMismatch(N);
    Eigen::array<Eigen::DenseIndex, N> dims;
    for (int i = 0; i < N; ++i) dims[i] = shape_.dim(i);
    return TensorMapT<T, N>(data<T>(), dims);
  }
  template <typename T>
  T scalar() const {
    return *data<T>();
  }

  // Rows [begin, end) of the first dimension, sharing storage.
  Tensor Slice(int64_t begin, int64_t end) const;
  // Same buffer viewed with another shape of equal element count.
  absl::StatusOr<Tensor> Reshaped(const TensorShape& shape) const;
  // A copy with its own buffer.
  Tensor DeepCopy() const;
  // True when no other Tensor shares this buffer, so it may be written in place.
  bool RefCountIsOne() const { return buffer_ != nullptr && buffer_.use_count() == 1; }
  bool SharesBufferWith(const Tensor& other) const { return buffer_ == other.buffer_; }

  // True when dtype, shape and every element are equal.
  bool BitwiseEquals(const Tensor& other) const;
  // "float32[2,3] {1, 2, 3, ...}" showing at most `max_elements` values.
  std::string DebugString(int max_elements = 8) const;

 private:
  [[noreturn]] void DieRankMismatch(int rank) const;

  DType dtype_ = DType::kFloat32;
  TensorShape shape_;
  int64_t num_elements_ = 1;
  std::shared_ptr<TensorBuffer> buffer_;
  size_t offset_ = 0;  // Bytes from buffer start; non-zero only for slices.
};

template <typename T>
Tensor Tensor::FromVector(const std::vector<T>& values, const TensorShape& shape) {
  Tensor t(DTypeOf<T>::value, shape);
  if (static_cast<int64_t>(values.size()) != t.num_elements()) {
    // A programming error, like an out-of-range index: fail loudly rather than pad or truncate.
    std::fprintf(stderr, "sluice: Tensor::FromVector: %zu values for shape %s (%lld elements)\n",
                 values.size(), shape.DebugString().c_str(),
                 static_cast<long long>(t.num_elements()));
    std::abort();
  }
  T* out = t.data<T>();
  for (size_t i = 0; i < values.size(); ++i) out[i] = values[i];
  return t;
}

}  // namespace sluice

#endif  // SLUICE_CORE_TENSOR_H_
