#include "core/tensor_shape.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sluice {

TensorShape TensorShape::UnknownRank() {
  TensorShape s;
  s.unknown_rank_ = true;
  return s;
}

bool TensorShape::IsFullyDefined() const {
  if (unknown_rank_) return false;
  for (int64_t d : dims_) {
    if (d < 0) return false;
  }
  return true;
}

int64_t TensorShape::num_elements() const {
  if (!IsFullyDefined()) return -1;
  int64_t n = 1;
  for (int64_t d : dims_) {
    if (__builtin_mul_overflow(n, d, &n)) return -1;
  }
  return n;
}

absl::StatusOr<int64_t> TensorShape::CheckedNumElements() const {
  if (!IsFullyDefined()) {
    return absl::InvalidArgumentError(
        absl::StrCat("shape ", DebugString(), " is not fully defined"));
  }
  const int64_t n = num_elements();
  if (n < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("shape ", DebugString(), " has more than 2^63-1 elements"));
  }
  return n;
}

bool TensorShape::IsCompatibleWith(const TensorShape& other) const {
  TensorShape unused;
  return MergeWith(other, &unused).ok();
}

absl::Status TensorShape::MergeWith(const TensorShape& other, TensorShape* merged) const {
  if (unknown_rank_) {
    *merged = other;
    return absl::OkStatus();
  }
  if (other.unknown_rank_) {
    *merged = *this;
    return absl::OkStatus();
  }
  if (dims_.size() != other.dims_.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("shapes ", DebugString(), " and ", other.DebugString(), " differ in rank"));
  }
  TensorShape out = *this;
  for (size_t i = 0; i < dims_.size(); ++i) {
    int64_t a = dims_[i], b = other.dims_[i];
    if (a >= 0 && b >= 0 && a != b) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shapes ", DebugString(), " and ", other.DebugString(), " differ in dimension ", i));
    }
    out.dims_[i] = a >= 0 ? a : b;
  }
  *merged = std::move(out);
  return absl::OkStatus();
}

std::string TensorShape::DebugString() const {
  if (unknown_rank_) return "<unknown>";
  std::string s = "[";
  for (size_t i = 0; i < dims_.size(); ++i) {
    if (i > 0) s += ",";
    s += dims_[i] < 0 ? "?" : absl::StrCat(dims_[i]);
  }
  return s + "]";
}

}  // namespace sluice
