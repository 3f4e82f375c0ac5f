// Node attributes and shapes between Python values and AttrValue / TensorShape.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "python/bindings.h"

namespace sluice {
namespace python {
namespace {

absl::Status Mismatch(const AttrDef* def, const py::handle& value, absl::string_view want) {
  return absl::InvalidArgumentError(absl::StrCat("attribute '", def ? def->name : "?", "' must be ",
                                                 want, ", got ", std::string(py::repr(value))));
}

// A sluice.DType, TensorFlow's "float" (float32) or "double", or anything numpy understands as
// a dtype (np.float32, "int64", float).
absl::StatusOr<DType> DTypeFromPython(const py::handle& value) {
  if (py::isinstance<DType>(value)) return py::cast<DType>(value);
  // TensorFlow's names where numpy's differ (numpy reads "float" as float64).
  if (py::isinstance<py::str>(value)) {
    const std::string name = py::cast<std::string>(value);
    if (name == "float") return DType::kFloat32;
    if (name == "double") return DType::kFloat64;
  }
  py::dtype d;
  try {
    d = py::dtype::from_args(py::reinterpret_borrow<py::object>(value));
  } catch (py::error_already_set&) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(py::repr(value)), " is not a dtype"));
  }
  return DTypeFromNumpy(d);
}

}  // namespace

absl::StatusOr<TensorShape> ShapeFromPython(const py::handle& value) {
  if (value.is_none()) return TensorShape::UnknownRank();
  if (!py::isinstance<py::sequence>(value) || py::isinstance<py::str>(value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("a shape is a list of sizes (None for unknown), or None; got ",
                     std::string(py::repr(value))));
  }
  TensorShape shape;
  for (py::handle d : py::reinterpret_borrow<py::sequence>(value)) {
    if (d.is_none()) {
      shape.AddDim(kUnknownDim);
      continue;
    }
    int64_t size = py::cast<int64_t>(d);
    if (size < -1) {
      return absl::InvalidArgumentError(
          absl::StrCat("shape ", std::string(py::repr(value)), " has a negative size"));
    }
    shape.AddDim(size);
  }
  return shape;
}

py::object ShapeToPython(const TensorShape& shape) {
  if (shape.unknown_rank()) return py::none();
  py::list dims;
  for (int64_t d : shape.dims()) {
    if (d == kUnknownDim) {
      dims.append(py::none());
    } else {
      dims.append(d);
    }
  }
  return py::tuple(dims);
}

absl::StatusOr<AttrValue> AttrFromPython(const AttrDef* def, const py::handle& value) {
  // Without a definition (an unknown attribute) convert by Python type; AddNode then reports
  // the attribute by name.
  AttrType type = def ? def->type : AttrType::kInt;
  if (def == nullptr) {
    if (py::isinstance<py::bool_>(value)) return AttrValue(py::cast<bool>(value));
    if (py::isinstance<py::int_>(value)) return AttrValue(py::cast<int64_t>(value));
    if (py::isinstance<py::float_>(value)) return AttrValue(py::cast<double>(value));
    if (py::isinstance<py::str>(value)) return AttrValue(py::cast<std::string>(value));
    if (py::isinstance<DType>(value)) return AttrValue(py::cast<DType>(value));
    return Mismatch(def, value, "a bool, int, float, str or DType");
  }
  try {
    switch (type) {
      case AttrType::kInt:
        if (py::isinstance<py::bool_>(value)) return Mismatch(def, value, "an int");
        return AttrValue(py::cast<int64_t>(value));
      case AttrType::kFloat:
        return AttrValue(py::cast<double>(value));
      case AttrType::kBool:
        if (!py::isinstance<py::bool_>(value)) return Mismatch(def, value, "a bool");
        return AttrValue(py::cast<bool>(value));
      case AttrType::kString:
        if (!py::isinstance<py::str>(value)) return Mismatch(def, value, "a str");
        return AttrValue(py::cast<std::string>(value));
      case AttrType::kType: {
        SLUICE_ASSIGN_OR_RETURN(DType d, DTypeFromPython(value));
        return AttrValue(d);
      }
      case AttrType::kShape: {
        SLUICE_ASSIGN_OR_RETURN(TensorShape s, ShapeFromPython(value));
        return AttrValue(std::move(s));
      }
      case AttrType::kTensor: {
        SLUICE_ASSIGN_OR_RETURN(Tensor t, LiteralFromPython(value));
        return AttrValue(std::move(t));
      }
      case AttrType::kIntList:
        return AttrValue(py::cast<std::vector<int64_t>>(value));
      case AttrType::kTypeList: {
        std::vector<DType> types;
        for (py::handle item : py::reinterpret_borrow<py::sequence>(value)) {
          SLUICE_ASSIGN_OR_RETURN(DType d, DTypeFromPython(item));
          types.push_back(d);
        }
        return AttrValue(std::move(types));
      }
    }
  } catch (py::cast_error&) {
    return Mismatch(def, value, AttrTypeName(type));
  }
  return Mismatch(def, value, AttrTypeName(type));
}

py::object AttrToPython(const AttrValue& value) {
  return std::visit(
      [](const auto& v) -> py::object {
        using V = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<V, TensorShape>) {
          return ShapeToPython(v);
        } else if constexpr (std::is_same_v<V, Tensor>) {
          return ArrayFromTensor(v);
        } else {
          return py::cast(v);
        }
      },
      value.storage());
}

}  // namespace python
}  // namespace sluice
