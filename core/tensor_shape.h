// TensorShape: the dimensions of a tensor. During shape inference a shape may be partially
// known: a dimension of kUnknownDim (-1) is unknown, and a shape built by UnknownRank() knows
// nothing. A Tensor's own shape is always fully defined. Value type; not synchronised.
//
//   TensorShape s({2, 3});            // s.num_elements() == 6, s.DebugString() == "[2,3]"
//   TensorShape p({-1, 4});           // batch dimension unknown: "[?,4]"
//   TensorShape u = TensorShape::UnknownRank();   // "<unknown>"
#ifndef SLUICE_CORE_TENSOR_SHAPE_H_
#define SLUICE_CORE_TENSOR_SHAPE_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace sluice {

inline constexpr int64_t kUnknownDim = -1;

class TensorShape {
 public:
  TensorShape() = default;  // A scalar.
  TensorShape(std::initializer_list<int64_t> dims) : dims_(dims) {}
  explicit TensorShape(absl::Span<const int64_t> dims) : dims_(dims.begin(), dims.end()) {}
  static TensorShape UnknownRank();

  bool unknown_rank() const { return unknown_rank_; }
  // Rank; -1 when the rank is unknown.
  int rank() const { return unknown_rank_ ? -1 : static_cast<int>(dims_.size()); }
  int64_t dim(int i) const { return dims_[i]; }
  const std::vector<int64_t>& dims() const { return dims_; }
  bool IsFullyDefined() const;
  // Product of the dimensions; -1 when not fully defined or when the product overflows int64.
  int64_t num_elements() const;
  // The product, or InvalidArgument naming the shape when it is not fully defined or overflows
  // int64. Shapes that come from users or the wire pass this before anything is sized by them.
  absl::StatusOr<int64_t> CheckedNumElements() const;

  void AddDim(int64_t size) { dims_.push_back(size); }
  void set_dim(int i, int64_t size) { dims_[i] = size; }
  void RemoveDim(int i) { dims_.erase(dims_.begin() + i); }
  void InsertDim(int i, int64_t size) { dims_.insert(dims_.begin() + i, size); }

  // True when some fully defined shape could match both (unknowns match anything).
  bool IsCompatibleWith(const TensorShape& other) const;
  // Fills unknowns of each from the other; error when they conflict.
  absl::Status MergeWith(const TensorShape& other, TensorShape* merged) const;

  std::string DebugString() const;
  bool operator==(const TensorShape& other) const {
    return unknown_rank_ == other.unknown_rank_ && dims_ == other.dims_;
  }
  bool operator!=(const TensorShape& other) const { return !(*this == other); }

 private:
  std::vector<int64_t> dims_;
  bool unknown_rank_ = false;
};

}  // namespace sluice

#endif  // SLUICE_CORE_TENSOR_SHAPE_H_
