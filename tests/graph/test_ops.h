// A private op registry for graph-layer tests, so they do not depend on ops/.
#ifndef SLUICE_TESTS_GRAPH_TEST_OPS_H_
#define SLUICE_TESTS_GRAPH_TEST_OPS_H_

#include "graph/op_def.h"
#include "graph/shape_inference.h"

namespace sluice {
namespace test {

inline const OpRegistry* TestOpRegistry() {
  static OpRegistry* registry = [] {
    auto* r = new OpRegistry;
    auto check = [](absl::Status s) {
      if (!s.ok()) abort();
    };
    check(r->Register(OpDefBuilder("Const")
                          .Output("output: dtype")
                          .Attr("value: tensor")
                          .Attr("dtype: type")
                          .SetShapeFn([](InferenceContext* c) -> absl::Status {
                            c->set_output(0, c->GetAttr<Tensor>("value")->shape());
                            return absl::OkStatus();
                          })));
    check(r->Register(OpDefBuilder("Placeholder")
                          .Output("output: dtype")
                          .Attr("dtype: type")
                          .Attr("shape: shape = <unknown>")
                          .SetShapeFn([](InferenceContext* c) -> absl::Status {
                            c->set_output(0, *c->GetAttr<TensorShape>("shape"));
                            return absl::OkStatus();
                          })));
    check(r->Register(OpDefBuilder("Add")
                          .Input("x: T")
                          .Input("y: T")
                          .Output("z: T")
                          .Attr("T: {float32, float64, int32}")
                          .SetShapeFn(BroadcastBinaryShape)));
    check(r->Register(OpDefBuilder("MatMul")
                          .Input("a: T")
                          .Input("b: T")
                          .Output("product: T")
                          .Attr("T: {float32, float64}")
                          .Attr("transpose_a: bool = false")
                          .SetShapeFn([](InferenceContext* c) -> absl::Status {
                            const TensorShape& a = c->input_shape(0);
                            const TensorShape& b = c->input_shape(1);
                            if (a.rank() == 2 && b.rank() == 2 && a.dim(1) >= 0 && b.dim(0) >= 0 &&
                                a.dim(1) != b.dim(0)) {
                              return InferenceContext::Error(
                                  absl::StrCat("MatMul inner dimensions differ: ", a.DebugString(),
                                               " x ", b.DebugString()));
                            }
                            c->set_output(0, TensorShape({a.dim(0), b.dim(1)}));
                            return absl::OkStatus();
                          })));
    check(r->Register(OpDefBuilder("Concat")
                          .Input("values: N * T")
                          .Input("axis: int64")
                          .Output("output: T")
                          .Attr("N: int >= 1")
                          .Attr("T: type")));
    check(r->Register(OpDefBuilder("Split")
                          .Input("value: T")
                          .Output("output: num_split * T")
                          .Attr("num_split: int >= 1")
                          .Attr("T: type")));
    check(r->Register(OpDefBuilder("NoOp")));
    return r;
  }();
  return registry;
}

}  // namespace test
}  // namespace sluice

#endif  // SLUICE_TESTS_GRAPH_TEST_OPS_H_
