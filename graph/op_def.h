// OpDef: the signature of an op (typed inputs and outputs, attributes with defaults), its doc
// string and its shape-inference function; OpRegistry: every known op by name.
//
// Ops are declared with a compact builder, then registered explicitly (see ops/register.h):
//
//   registry->Register(OpDefBuilder("MatMul")
//       .Input("a: T").Input("b: T").Output("product: T")
//       .Attr("T: {float32, float64}")
//       .Attr("transpose_a: bool = false").Attr("transpose_b: bool = false")
//       .Doc("Matrix product of two rank-2 tensors.")
//       .SetShapeFn(MatMulShape));
//
// Argument specs are "name: dtype" (a fixed dtype), "name: T" (the dtype attribute T),
// "name: N * T" (a list of N tensors of dtype T) or, for inputs, "name: Ref(T)": a reference to
// a variable, which the op reads or updates in place (the placer colocates the op with the
// variable; the input must come from a Variable node). Attribute specs are "name: kind [= default]"
// with kind one of int, float, bool, string, type, shape, tensor, list(int), list(type), or a
// set of allowed dtypes "{float32, int64}" (a type attribute).
//
// Thread-safety: an OpRegistry is filled once at start-up, then only read; Register and LookUp
// are safe to call concurrently all the same.
#ifndef SLUICE_GRAPH_OP_DEF_H_
#define SLUICE_GRAPH_OP_DEF_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "graph/attr_value.h"

namespace sluice {

class InferenceContext;
using ShapeFn = std::function<absl::Status(InferenceContext*)>;

struct ArgDef {
  std::string name;
  DType fixed_type = DType::kInvalid;  // Set when the dtype is fixed.
  std::string type_attr;               // Else the dtype comes from this attribute.
  std::string number_attr;             // Non-empty for a list of `number_attr` tensors.
  bool is_ref = false;                 // "Ref(T)": a variable reference (inputs only).
};

struct AttrDef {
  std::string name;
  AttrType type = AttrType::kInt;
  std::optional<AttrValue> default_value;
  std::vector<DType> allowed_types;  // For type attributes; empty allows all.
  std::optional<int64_t> minimum;    // For int attributes ("N: int >= 1").
};

struct OpDef {
  std::string name;
  std::vector<ArgDef> inputs;
  std::vector<ArgDef> outputs;
  std::vector<AttrDef> attrs;
  std::string doc;
  bool is_stateful = false;  // Never pruned as a duplicate, never constant-folded.
  ShapeFn shape_fn;          // Unset: every output has unknown shape.

  const AttrDef* FindAttr(absl::string_view name) const;
};

class OpDefBuilder {
 public:
  explicit OpDefBuilder(std::string name);
  OpDefBuilder& Input(absl::string_view spec);
  OpDefBuilder& Output(absl::string_view spec);
  OpDefBuilder& Attr(absl::string_view spec);
  OpDefBuilder& Doc(absl::string_view doc);
  OpDefBuilder& SetIsStateful();
  OpDefBuilder& SetShapeFn(ShapeFn fn);
  // The finished OpDef, or the first spec that did not parse.
  absl::StatusOr<OpDef> Build() const;

 private:
  OpDef def_;
  absl::Status status_;
};

class OpRegistry {
 public:
  // The process-wide registry that ops/register.h fills.
  static OpRegistry* Global();

  // Fails on a malformed builder or a duplicate name.
  absl::Status Register(const OpDefBuilder& builder);
  // NotFound naming the op when it is unknown.
  absl::StatusOr<const OpDef*> LookUp(absl::string_view op) const;
  std::vector<std::string> OpNames() const;

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<OpDef>, std::less<>> ops_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice

#endif  // SLUICE_GRAPH_OP_DEF_H_
