// The `_sluice_core` extension module: the C++ engine behind the `sluice` Python package.
// Only sluice/*.py imports it; users import `sluice`.
#include "python/bindings.h"

PYBIND11_MODULE(_sluice_core, m) {
  m.doc() = "C++ core of the sluice package (graphs, sessions, clusters, numpy conversion).";
  sluice::python::BindErrors(m);
  sluice::python::BindDTypes(m);
  sluice::python::BindGraph(m);
  sluice::python::BindSession(m);
  sluice::python::BindTraining(m);
  sluice::python::BindCluster(m);
  sluice::python::BindData(m);
  sluice::python::BindPipeline(m);
}
