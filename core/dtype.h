// DType: the element types a Tensor can hold, their sizes and names, and compile-time mapping
// between C++ types and DType values. Thread-safe: constants only.
//
//   DType dt = DTypeOf<float>::value;          // DType::kFloat32
//   size_t n = DTypeSize(dt);                  // 4
//   SLUICE_SWITCH_NUMERIC_DTYPE(dt, T, { Fill<T>(...); });
#ifndef SLUICE_CORE_DTYPE_H_
#define SLUICE_CORE_DTYPE_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sluice {

enum class DType : int32_t {
  kInvalid = 0,
  kFloat32 = 1,
  kFloat64 = 2,
  kInt32 = 3,
  kInt64 = 4,
  kBool = 5,
};

// Bytes per element; 0 for kInvalid.
size_t DTypeSize(DType dtype);
// "float32", "float64", "int32", "int64", "bool", "invalid".
absl::string_view DTypeName(DType dtype);
absl::StatusOr<DType> DTypeFromName(absl::string_view name);
bool IsFloating(DType dtype);
bool IsInteger(DType dtype);

template <typename T>
struct DTypeOf;
template <>
struct DTypeOf<float> {
  static constexpr DType value = DType::kFloat32;
};
template <>
struct DTypeOf<double> {
  static constexpr DType value = DType::kFloat64;
};
template <>
struct DTypeOf<int32_t> {
  static constexpr DType value = DType::kInt32;
};
template <>
struct DTypeOf<int64_t> {
  static constexpr DType value = DType::kInt64;
};
template <>
struct DTypeOf<bool> {
  static constexpr DType value = DType::kBool;
};

}  // namespace sluice

// Runs BODY with TYPE bound to the C++ type of DTYPE; DEFAULT runs for other dtypes.
#define SLUICE_DTYPE_CASE_(DTYPE_VALUE, CTYPE, TYPE, BODY) \
  case DTYPE_VALUE: {                                      \
    using TYPE = CTYPE;                                    \
    BODY;                                                  \
    break;                                                 \
  }

#define SLUICE_SWITCH_DTYPE(DTYPE, TYPE, BODY, DEFAULT)               \
  switch (DTYPE) {                                                    \
    SLUICE_DTYPE_CASE_(::sluice::DType::kFloat32, float, TYPE, BODY)  \
    SLUICE_DTYPE_CASE_(::sluice::DType::kFloat64, double, TYPE, BODY) \
    SLUICE_DTYPE_CASE_(::sluice::DType::kInt32, int32_t, TYPE, BODY)  \
    SLUICE_DTYPE_CASE_(::sluice::DType::kInt64, int64_t, TYPE, BODY)  \
    SLUICE_DTYPE_CASE_(::sluice::DType::kBool, bool, TYPE, BODY)      \
    default: {                                                        \
      DEFAULT;                                                        \
    }                                                                 \
  }

#endif  // SLUICE_CORE_DTYPE_H_
