// AttrValue: the value of one node attribute (an int, float, bool, string, dtype, shape, tensor,
// or a list of ints or dtypes), and AttrMap, a node's attributes by name. Value types; not
// synchronised.
//
//   AttrMap attrs = {{"T", AttrValue(DType::kFloat32)}, {"transpose_a", AttrValue(false)}};
//   SLUICE_ASSIGN_OR_RETURN(bool ta, GetAttr<bool>(attrs, "transpose_a"));
#ifndef SLUICE_GRAPH_ATTR_VALUE_H_
#define SLUICE_GRAPH_ATTR_VALUE_H_

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/dtype.h"
#include "core/tensor.h"
#include "core/tensor_shape.h"

namespace sluice {

enum class AttrType { kInt, kFloat, kBool, kString, kType, kShape, kTensor, kIntList, kTypeList };

absl::string_view AttrTypeName(AttrType type);  // "int", "float", ..., "list(int)"

class AttrValue {
 public:
  using Storage = std::variant<int64_t, float, bool, std::string, DType, TensorShape, Tensor,
                               std::vector<int64_t>, std::vector<DType>>;

  AttrValue() : value_(int64_t{0}) {}
  AttrValue(int v) : value_(int64_t{v}) {}
  AttrValue(int64_t v) : value_(v) {}
  AttrValue(float v) : value_(v) {}
  AttrValue(double v) : value_(static_cast<float>(v)) {}
  AttrValue(bool v) : value_(v) {}
  AttrValue(const char* v) : value_(std::string(v)) {}
  AttrValue(std::string v) : value_(std::move(v)) {}
  AttrValue(DType v) : value_(v) {}
  AttrValue(TensorShape v) : value_(std::move(v)) {}
  AttrValue(Tensor v) : value_(std::move(v)) {}
  AttrValue(std::vector<int64_t> v) : value_(std::move(v)) {}
  AttrValue(std::vector<DType> v) : value_(std::move(v)) {}

  AttrType type() const { return static_cast<AttrType>(value_.index()); }
  const Storage& storage() const { return value_; }
  template <typename T>
  const T* get_if() const {
    return std::get_if<T>(&value_);
  }
  std::string DebugString() const;
  bool operator==(const AttrValue& other) const;

 private:
  Storage value_;
};

using AttrMap = std::map<std::string, AttrValue, std::less<>>;

// The attribute `name` as a T, or an error naming the attribute and the type it holds.
template <typename T>
absl::StatusOr<T> GetAttr(const AttrMap& attrs, absl::string_view name) {
  auto it = attrs.find(name);
  if (it == attrs.end()) {
    return absl::InvalidArgumentError(absl::StrCat("missing attribute '", name, "'"));
  }
  const T* v = it->second.get_if<T>();
  if (v == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("attribute '", name, "' holds a ",
                                                   AttrTypeName(it->second.type()),
                                                   ", not the type asked for"));
  }
  return *v;
}

}  // namespace sluice

#endif  // SLUICE_GRAPH_ATTR_VALUE_H_
