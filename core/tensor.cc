#include "core/tensor.h"

#include <cstdio>
#include <cstdlib>
#include <new>

#include "absl/strings/str_cat.h"

namespace sluice {

TensorBuffer::TensorBuffer(size_t bytes) : size_(bytes) {
  // aligned_alloc needs a size that is a multiple of the alignment; never allocate 0 bytes.
  size_t rounded = (bytes + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment;
  data_ = std::aligned_alloc(kTensorAlignment, rounded == 0 ? kTensorAlignment : rounded);
  if (data_ == nullptr) throw std::bad_alloc();
}

TensorBuffer::~TensorBuffer() { std::free(data_); }

Tensor::Tensor(DType dtype, const TensorShape& shape)
    : dtype_(dtype), shape_(shape), num_elements_(shape.num_elements()) {
  if (num_elements_ < 0) num_elements_ = 0;  // Callers validate shapes; never allocate junk.
  buffer_ = std::make_shared<TensorBuffer>(num_elements_ * DTypeSize(dtype));
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
  if (!shape.IsFullyDefined() || shape.num_elements() != num_elements_) {
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
