#include "graph/attr_value.h"

#include "absl/strings/str_join.h"

namespace sluice {

absl::string_view AttrTypeName(AttrType type) {
  switch (type) {
    case AttrType::kInt:
      return "int";
    case AttrType::kFloat:
      return "float";
    case AttrType::kBool:
      return "bool";
    case AttrType::kString:
      return "string";
    case AttrType::kType:
      return "type";
    case AttrType::kShape:
      return "shape";
    case AttrType::kTensor:
      return "tensor";
    case AttrType::kIntList:
      return "list(int)";
    case AttrType::kTypeList:
      return "list(type)";
  }
  return "unknown";
}

std::string AttrValue::DebugString() const {
  struct Printer {
    std::string operator()(int64_t v) const { return absl::StrCat(v); }
    std::string operator()(float v) const { return absl::StrCat(v); }
    std::string operator()(bool v) const { return v ? "true" : "false"; }
    std::string operator()(const std::string& v) const { return absl::StrCat("\"", v, "\""); }
    std::string operator()(DType v) const { return std::string(DTypeName(v)); }
    std::string operator()(const TensorShape& v) const { return v.DebugString(); }
    std::string operator()(const Tensor& v) const { return v.DebugString(); }
    std::string operator()(const std::vector<int64_t>& v) const {
      return absl::StrCat("[", absl::StrJoin(v, ","), "]");
    }
    std::string operator()(const std::vector<DType>& v) const {
      std::vector<std::string> names;
      for (DType d : v) names.emplace_back(DTypeName(d));
      return absl::StrCat("[", absl::StrJoin(names, ","), "]");
    }
  };
  return std::visit(Printer{}, value_);
}

bool AttrValue::operator==(const AttrValue& other) const {
  if (value_.index() != other.value_.index()) return false;
  return std::visit(
      [&other](const auto& a) {
        using T = std::decay_t<decltype(a)>;
        const T& b = *other.get_if<T>();
        if constexpr (std::is_same_v<T, Tensor>) {
          return a.BitwiseEquals(b);
        } else {
          return a == b;
        }
      },
      value_);
}

}  // namespace sluice
