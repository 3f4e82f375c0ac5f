// InferenceContext: what an op's shape function sees while a node is added to a graph: input
// dtypes and shapes, the values of inputs that come straight from Const nodes, and attributes.
// The function sets output shapes; an error it returns is reported against the node.
// Not synchronised: one context per AddNode call.
//
//   absl::Status UnchangedShape(InferenceContext* c) {
//     c->set_output(0, c->input_shape(0));
//     return absl::OkStatus();
//   }
#ifndef SLUICE_GRAPH_SHAPE_INFERENCE_H_
#define SLUICE_GRAPH_SHAPE_INFERENCE_H_

#include <vector>

#include "absl/status/statusor.h"
#include "graph/attr_value.h"

namespace sluice {

class InferenceContext {
 public:
  InferenceContext(const AttrMap* attrs, std::vector<DType> input_types,
                   std::vector<TensorShape> input_shapes, std::vector<const Tensor*> input_values,
                   int num_outputs);

  int num_inputs() const { return static_cast<int>(input_shapes_.size()); }
  const TensorShape& input_shape(int i) const { return input_shapes_[i]; }
  DType input_type(int i) const { return input_types_[i]; }
  // The value of input i when it comes straight from a Const node, else nullptr.
  const Tensor* input_value(int i) const { return input_values_[i]; }
  template <typename T>
  absl::StatusOr<T> GetAttr(absl::string_view name) const {
    return sluice::GetAttr<T>(*attrs_, name);
  }
  const AttrMap& attrs() const { return *attrs_; }

  int num_outputs() const { return static_cast<int>(output_shapes_.size()); }
  void set_output(int i, TensorShape shape) { output_shapes_[i] = std::move(shape); }
  const std::vector<TensorShape>& output_shapes() const { return output_shapes_; }

  // Error helper: InvalidArgument with the given message.
  static absl::Status Error(absl::string_view message) {
    return absl::InvalidArgumentError(message);
  }

 private:
  const AttrMap* attrs_;
  std::vector<DType> input_types_;
  std::vector<TensorShape> input_shapes_;
  std::vector<const Tensor*> input_values_;
  std::vector<TensorShape> output_shapes_;
};

// Common shape functions.
absl::Status UnknownShape(InferenceContext* c);
absl::Status UnchangedShape(InferenceContext* c);  // output 0 = input 0
absl::Status ScalarShape(InferenceContext* c);
// numpy broadcasting of inputs 0 and 1 into output 0.
absl::Status BroadcastBinaryShape(InferenceContext* c);
// numpy broadcasting of two shapes; InvalidArgument naming both shapes when incompatible.
absl::StatusOr<TensorShape> BroadcastShapes(const TensorShape& a, const TensorShape& b);

}  // namespace sluice

#endif  // SLUICE_GRAPH_SHAPE_INFERENCE_H_
