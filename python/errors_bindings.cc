// Status -> Python exception. sluice/errors.py defines one exception class per absl status code
// (InvalidArgumentError, NotFoundError, ...) and registers them here when it is imported.
#include "python/bindings.h"

namespace sluice {
namespace python {
namespace {

// Code -> exception class. Deliberately leaked: it must outlive interpreter shutdown order.
py::dict* error_classes = nullptr;

}  // namespace

void ThrowStatus(const absl::Status& status) {
  py::int_ code(static_cast<int>(status.code()));
  std::string message(status.message());
  if (error_classes == nullptr || !error_classes->contains(code)) {
    throw std::runtime_error(status.ToString());
  }
  py::object exc = (*error_classes)[code](message, code);
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
  throw py::error_already_set();
}

void BindErrors(py::module_& m) {
  error_classes = new py::dict();
  m.def(
      "_register_error_classes",
      [](const py::dict& by_code) {
        for (auto item : by_code) (*error_classes)[item.first] = item.second;
      },
      "Registers the exception class raised for each absl status code (called by "
      "sluice.errors).");
}

}  // namespace python
}  // namespace sluice
