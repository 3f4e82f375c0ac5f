// DType <-> numpy dtype, numpy array <-> Tensor, Python literal -> Tensor.
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "python/bindings.h"

namespace sluice {
namespace python {
namespace {

std::string Repr(const py::handle& value) {
  std::string r = py::repr(value);
  return r.size() > 60 ? r.substr(0, 57) + "..." : r;
}

}  // namespace

py::dtype NumpyDType(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return py::dtype::of<float>();
    case DType::kFloat64:
      return py::dtype::of<double>();
    case DType::kInt32:
      return py::dtype::of<int32_t>();
    case DType::kInt64:
      return py::dtype::of<int64_t>();
    case DType::kBool:
      return py::dtype::of<bool>();
    default:
      throw std::invalid_argument(absl::StrCat("no numpy dtype for ", DTypeName(dtype)));
  }
}

absl::StatusOr<DType> DTypeFromNumpy(const py::dtype& dtype) {
  const char kind = dtype.kind();
  const py::ssize_t size = dtype.itemsize();
  // '=' native, '|' not applicable (1 byte), '<' / '>' explicit little / big endian.
  const char order = dtype.byteorder();
  const bool native = order == '=' || order == '|' ||
                      order == (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? '<' : '>');
  if (native) {
    if (kind == 'f' && size == 4) return DType::kFloat32;
    if (kind == 'f' && size == 8) return DType::kFloat64;
    if (kind == 'i' && size == 4) return DType::kInt32;
    if (kind == 'i' && size == 8) return DType::kInt64;
    if (kind == 'b' && size == 1) return DType::kBool;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("numpy dtype ", dtype.attr("str").cast<std::string>(),
                   " has no sluice dtype (float32, float64, int32, int64 or bool in native "
                   "byte order)"));
}

absl::StatusOr<Tensor> TensorFromArray(const py::array& array) {
  SLUICE_ASSIGN_OR_RETURN(DType dtype, DTypeFromNumpy(array.dtype()));
  std::vector<int64_t> dims(array.shape(), array.shape() + array.ndim());
  Tensor t(dtype, TensorShape(dims));
  if (t.num_elements() > 0) {
    py::array contiguous = py::array::ensure(array, py::array::c_style);
    if (!contiguous) throw py::error_already_set();
    std::memcpy(t.raw_data(), contiguous.data(), t.TotalBytes());
  }
  return t;
}

py::object ArrayFromTensor(Tensor tensor) {
  py::dtype dtype = NumpyDType(tensor.dtype());
  std::vector<py::ssize_t> shape(tensor.shape().dims().begin(), tensor.shape().dims().end());
  py::array out;
  if (tensor.num_elements() > 0 && tensor.RefCountIsOne()) {
    // Nobody else can reach this buffer: numpy takes it over.
    auto* owner = new Tensor(std::move(tensor));
    py::capsule base(owner, [](void* p) { delete static_cast<Tensor*>(p); });
    out = py::array(dtype, shape, owner->raw_data(), base);
  } else {
    out = py::array(dtype, shape);
    if (tensor.num_elements() > 0) {
      std::memcpy(out.mutable_data(), tensor.raw_data(), tensor.TotalBytes());
    }
  }
  if (out.ndim() == 0) return out[py::tuple()];  // A numpy scalar, like np.sum returns.
  return std::move(out);
}

absl::StatusOr<Tensor> TensorFromPython(const py::handle& value, bool* default_typed) {
  py::module_ np = py::module_::import("numpy");
  *default_typed = !py::isinstance<py::array>(value) && !py::isinstance(value, np.attr("generic"));
  py::array array;
  try {
    array = np.attr("asarray")(value);
  } catch (py::error_already_set& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot convert ", Repr(value), " to a tensor: ", e.what()));
  }
  if (*default_typed) {
    // Python numbers stay wide here (float64, int64) so that an op needing float64 gets the
    // exact value; DefaultTypedLiteral narrows them when nothing asks for a dtype.
    const char kind = array.dtype().kind();
    if (kind == 'f') {
      array = array.attr("astype")(np.attr("float64"));
    } else if (kind == 'i') {
      array = array.attr("astype")(np.attr("int64"));
    } else if (kind != 'b') {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot convert ", Repr(value), " to a tensor (numpy makes it ",
          array.dtype().attr("name").cast<std::string>(), "; expected numbers or booleans)"));
    }
  }
  return TensorFromArray(array);
}

absl::StatusOr<Tensor> LiteralFromPython(const py::handle& value) {
  bool default_typed = false;
  SLUICE_ASSIGN_OR_RETURN(Tensor t, TensorFromPython(value, &default_typed));
  return default_typed ? DefaultTypedLiteral(t) : t;
}

void BindDTypes(py::module_& m) {
  py::enum_<DType> dtype(m, "DType", "The element type of a tensor.");
  dtype.value("float32", DType::kFloat32)
      .value("float64", DType::kFloat64)
      .value("int32", DType::kInt32)
      .value("int64", DType::kInt64)
      .value("bool", DType::kBool);
  dtype.def_property_readonly("as_numpy_dtype", &NumpyDType,
                              "The numpy dtype with the same element type.");
  dtype.def_property_readonly(
      "size", [](DType d) { return DTypeSize(d); }, "Bytes per element.");
  dtype.def_property_readonly("is_floating", &IsFloating, "True for float32 and float64.");
  dtype.def_property_readonly("is_integer", &IsInteger, "True for int32 and int64.");
  dtype.attr("__repr__") = py::cpp_function(
      [](DType d) { return absl::StrCat("sluice.", DTypeName(d)); }, py::is_method(dtype));
  dtype.attr("__str__") = dtype.attr("__repr__");
  m.def(
      "_dtype_from_numpy", [](const py::dtype& d) { return ValueOrThrow(DTypeFromNumpy(d)); },
      "The sluice DType of a numpy dtype; InvalidArgumentError when there is none.");
  m.def(
      "_literal_value",
      [](const py::handle& value) {
        return ArrayFromTensor(ValueOrThrow(LiteralFromPython(value)));
      },
      "`value` as the numpy value a literal input becomes (Python floats -> float32, ints -> "
      "int32 unless too large).");
}

}  // namespace python
}  // namespace sluice
