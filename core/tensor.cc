#include "core/tensor.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <map>
#include <new>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace sluice {

namespace {

// Large buffers freed by one step are usually needed again, at the same size, by the next
// (activations, received tensors, GEMM outputs). malloc hands such sizes to mmap/munmap, so
// every step would page-fault them in afresh, which costs about as much as filling them once.
// This cache keeps up to kMaxCachedBytes of freed large buffers for reuse at their exact size.
// Invariant: cached_bytes == sum of the sizes in `free`.
class LargeBufferCache {
 public:
  static constexpr size_t kMinBytes = 1 << 20;
  static constexpr size_t kMaxCachedBytes = size_t{512} << 20;

  void* Take(size_t bytes) {
    absl::MutexLock lock(&mu_);
    auto [first, end] = free_.equal_range(bytes);
    if (first == end) return nullptr;
    // The most recently freed of that size: its pages are the likeliest still in cache.
    auto it = std::prev(end);
    void* p = it->second;
    free_.erase(it);
    cached_bytes_ -= bytes;
    return p;
  }

  // Keeps `p` for reuse, evicting other sizes if needed; false when it does not fit at all.
  bool Give(void* p, size_t bytes) {
    if (bytes > kMaxCachedBytes) return false;
    std::vector<void*> evicted;
    {
      absl::MutexLock lock(&mu_);
      while (cached_bytes_ + bytes > kMaxCachedBytes) {
        auto victim = free_.begin();  // The smallest: the cheapest to fault in again.
        cached_bytes_ -= victim->first;
        evicted.push_back(victim->second);
        free_.erase(victim);
      }
      free_.emplace(bytes, p);
      cached_bytes_ += bytes;
    }
    for (void* e : evicted) std::free(e);
    return true;
  }

 private:
  absl::Mutex mu_;
  std::multimap<size_t, void*> free_ ABSL_GUARDED_BY(mu_);
  size_t cached_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

LargeBufferCache& Cache() {
  static LargeBufferCache* cache = new LargeBufferCache;  // Never destroyed: used at exit.
  return *cache;
}

// Sanitizer builds skip the cache, so a use after free of a large buffer is still caught. (gcc
// defines __SANITIZE_*__; clang answers __has_feature.)
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SLUICE_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || defined(SLUICE_SANITIZED)
constexpr size_t kCacheMinBytes = SIZE_MAX;
#else
constexpr size_t kCacheMinBytes = LargeBufferCache::kMinBytes;
#endif

// aligned_alloc needs a size that is a multiple of the alignment; never allocate 0 bytes.
size_t AllocationBytes(size_t bytes) {
  const size_t rounded = (bytes + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment;
  return rounded == 0 ? kTensorAlignment : rounded;
}

}  // namespace

TensorBuffer::TensorBuffer(size_t bytes) : size_(bytes) {
  const size_t alloc = AllocationBytes(bytes);
  data_ = alloc >= kCacheMinBytes ? Cache().Take(alloc) : nullptr;
  if (data_ == nullptr) data_ = std::aligned_alloc(kTensorAlignment, alloc);
  if (data_ == nullptr) throw std::bad_alloc();
}

absl::Status MemoryBudget::Charge(int64_t bytes) {
  int64_t used = used_.load(std::memory_order_relaxed);
  do {
    if (bytes > limit_ - used) {
      return absl::ResourceExhaustedError(absl::StrCat(owner_, " holds ", used,
                                                       " bytes of tensors; ", bytes,
                                                       " more would pass its limit of ", limit_));
    }
  } while (!used_.compare_exchange_weak(used, used + bytes, std::memory_order_relaxed));
  return absl::OkStatus();
}

TensorBuffer::~TensorBuffer() {
  if (budget_) budget_->Release(static_cast<int64_t>(size_));
  const size_t alloc = AllocationBytes(size_);
  if (alloc >= kCacheMinBytes && Cache().Give(data_, alloc)) return;
  std::free(data_);
}

Tensor::Tensor(DType dtype, const TensorShape& shape)
    : dtype_(dtype), shape_(shape), num_elements_(shape.num_elements()) {
  if (num_elements_ < 0 && !shape.IsFullyDefined()) num_elements_ = 0;  // Callers validate.
  // An overflowing shape must never get a small buffer (kernels would index past it).
  size_t bytes;
  if (num_elements_ < 0 ||
      __builtin_mul_overflow(static_cast<size_t>(num_elements_), DTypeSize(dtype), &bytes)) {
    std::fprintf(stderr, "sluice: tensor shape %s overflows; use Tensor::Allocate\n",
                 shape.DebugString().c_str());
    std::abort();
  }
  buffer_ = std::make_shared<TensorBuffer>(bytes);
}

absl::StatusOr<size_t> Tensor::CheckedBytes(DType dtype, const TensorShape& shape) {
  auto n = shape.CheckedNumElements();
  if (!n.ok()) return n.status();
  int64_t bytes;
  if (__builtin_mul_overflow(*n, static_cast<int64_t>(DTypeSize(dtype)), &bytes) ||
      bytes > static_cast<int64_t>(SIZE_MAX / 2)) {
    return absl::InvalidArgumentError(absl::StrCat("a ", DTypeName(dtype), " tensor of shape ",
                                                   shape.DebugString(),
                                                   " needs more than 2^63-1 bytes"));
  }
  return static_cast<size_t>(bytes);
}

absl::StatusOr<Tensor> Tensor::Allocate(DType dtype, const TensorShape& shape,
                                        MemoryBudget* budget) {
  auto bytes = CheckedBytes(dtype, shape);
  if (!bytes.ok()) return bytes.status();
  if (budget) {
    absl::Status charged = budget->Charge(static_cast<int64_t>(*bytes));
    if (!charged.ok()) return charged;
  }
  try {
    Tensor t(dtype, shape);
    if (budget) t.buffer_->ChargedTo(budget->shared_from_this());
    return t;
  } catch (const std::bad_alloc&) {
    if (budget) budget->Release(static_cast<int64_t>(*bytes));
    return absl::ResourceExhaustedError(absl::StrCat("out of memory allocating ", *bytes,
                                                     " bytes for a ", DTypeName(dtype),
                                                     " tensor of shape ", shape.DebugString()));
  }
}

void Tensor::DieRankMismatch(int rank) const {
  std::fprintf(stderr, "sluice: rank-%d view of a tensor of shape %s\n", rank,
               shape_.DebugString().c_str());
  std::abort();
}

Tensor Tensor::Slice(int64_t begin, int64_t end) const {
  Tensor out = *this;
  int64_t row_elements = shape_.dim(0) == 0 ? 0 : num_elements_ / shape_.dim(0);
  out.shape_.set_dim(0, end - begin);
  out.num_elements_ = row_elements * (end - begin);
  out.offset_ = offset_ + begin * row_elements * DTypeSize(dtype_);
  return out;
}

absl::StatusOr<Tensor> Tensor::Reshaped(const TensorShape& shape) const {
  // num_elements() is -1 for an undefined or overflowing shape, never equal to ours.
  if (shape.num_elements() != num_elements_) {
    return absl::InvalidArgumentError(absl::StrCat("cannot reshape a tensor of shape ",
                                                   shape_.DebugString(), " (", num_elements_,
                                                   " elements) to ", shape.DebugString()));
  }
  Tensor out = *this;
  out.shape_ = shape;
  return out;
}

Tensor Tensor::DeepCopy() const {
  Tensor out(dtype_, shape_);
  if (TotalBytes() > 0) std::memcpy(out.raw_data(), raw_data(), TotalBytes());
  return out;
}

bool Tensor::BitwiseEquals(const Tensor& other) const {
  if (dtype_ != other.dtype_ || shape_ != other.shape_) return false;
  return TotalBytes() == 0 || std::memcmp(raw_data(), other.raw_data(), TotalBytes()) == 0;
}

std::string Tensor::DebugString(int max_elements) const {
  std::string s = absl::StrCat(DTypeName(dtype_), shape_.DebugString(), " {");
  int64_t n = std::min<int64_t>(num_elements_, max_elements);
  for (int64_t i = 0; i < n; ++i) {
    if (i > 0) s += ", ";
    SLUICE_SWITCH_DTYPE(dtype_, T, { absl::StrAppend(&s, data<T>()[i]); }, {});
  }
  if (n < num_elements_) s += ", ...";
  return s + "}";
}

}  // namespace sluice
