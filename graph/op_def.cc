#include "graph/op_def.h"

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/status.h"

namespace sluice {
namespace {

absl::Status SpecError(absl::string_view op, absl::string_view spec, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("op ", op, ": cannot parse spec '", spec, "': ", why));
}

// "name: rest" -> (name, rest), both trimmed.
bool SplitNameColon(absl::string_view spec, std::string* name, std::string* rest) {
  size_t colon = spec.find(':');
  if (colon == absl::string_view::npos) return false;
  *name = std::string(absl::StripAsciiWhitespace(spec.substr(0, colon)));
  *rest = std::string(absl::StripAsciiWhitespace(spec.substr(colon + 1)));
  return !name->empty() && !rest->empty();
}

absl::StatusOr<ArgDef> ParseArg(absl::string_view op, absl::string_view spec) {
  ArgDef arg;
  std::string type;
  if (!SplitNameColon(spec, &arg.name, &type)) {
    return SpecError(op, spec, "expected 'name: type'");
  }
  absl::string_view inner = type;
  if (absl::ConsumePrefix(&inner, "Ref(")) {
    if (!absl::ConsumeSuffix(&inner, ")")) return SpecError(op, spec, "unterminated 'Ref('");
    arg.is_ref = true;
    type = std::string(absl::StripAsciiWhitespace(inner));
    if (type.find('*') != std::string::npos) {
      return SpecError(op, spec, "a reference cannot be a list");
    }
  }
  size_t star = type.find('*');
  if (star != std::string::npos) {
    arg.number_attr = std::string(absl::StripAsciiWhitespace(type.substr(0, star)));
    type = std::string(absl::StripAsciiWhitespace(type.substr(star + 1)));
  }
  absl::StatusOr<DType> fixed = DTypeFromName(type);
  if (fixed.ok()) {
    arg.fixed_type = *fixed;
  } else {
    arg.type_attr = type;
  }
  return arg;
}

absl::StatusOr<AttrValue> ParseDefault(AttrType type, absl::string_view text) {
  auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("bad default '", text, "' for ", AttrTypeName(type)));
  };
  switch (type) {
    case AttrType::kInt: {
      int64_t v;
      if (!absl::SimpleAtoi(text, &v)) return bad();
      return AttrValue(v);
    }
    case AttrType::kFloat: {
      float v;
      if (!absl::SimpleAtof(text, &v)) return bad();
      return AttrValue(v);
    }
    case AttrType::kBool:
      if (text == "true") return AttrValue(true);
      if (text == "false") return AttrValue(false);
      return bad();
    case AttrType::kString:
      if (text.size() >= 2 && text.front() == '"' && text.back() == '"') {
        return AttrValue(std::string(text.substr(1, text.size() - 2)));
      }
      return bad();
    case AttrType::kType: {
      absl::StatusOr<DType> d = DTypeFromName(text);
      if (!d.ok()) return bad();
      return AttrValue(*d);
    }
    case AttrType::kShape:
    case AttrType::kIntList: {
      if (text == "<unknown>" && type == AttrType::kShape)
        return AttrValue(TensorShape::UnknownRank());
      if (text.size() < 2 || text.front() != '[' || text.back() != ']') return bad();
      std::vector<int64_t> values;
      for (absl::string_view piece :
           absl::StrSplit(text.substr(1, text.size() - 2), ',', absl::SkipWhitespace())) {
        int64_t v;
        if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(piece), &v)) return bad();
        values.push_back(v);
      }
      if (type == AttrType::kShape) return AttrValue(TensorShape(values));
      return AttrValue(values);
    }
    default:
      return bad();
  }
}

absl::StatusOr<AttrDef> ParseAttr(absl::string_view op, absl::string_view spec) {
  AttrDef attr;
  std::string rest;
  if (!SplitNameColon(spec, &attr.name, &rest)) {
    return SpecError(op, spec, "expected 'name: kind [= default]'");
  }
  std::string default_text;
  size_t eq = rest.find('=');
  size_t ge = rest.find(">=");
  if (ge != std::string::npos) {
    int64_t minimum;
    std::string min_text(absl::StripAsciiWhitespace(rest.substr(ge + 2)));
    if (!absl::SimpleAtoi(min_text, &minimum)) return SpecError(op, spec, "bad minimum");
    attr.minimum = minimum;
    rest = std::string(absl::StripAsciiWhitespace(rest.substr(0, ge)));
  } else if (eq != std::string::npos) {
    default_text = std::string(absl::StripAsciiWhitespace(rest.substr(eq + 1)));
    rest = std::string(absl::StripAsciiWhitespace(rest.substr(0, eq)));
  }
  if (!rest.empty() && rest.front() == '{') {
    if (rest.back() != '}') return SpecError(op, spec, "unterminated type set");
    attr.type = AttrType::kType;
    for (absl::string_view piece : absl::StrSplit(
             absl::string_view(rest).substr(1, rest.size() - 2), ',', absl::SkipWhitespace())) {
      absl::StatusOr<DType> d = DTypeFromName(absl::StripAsciiWhitespace(piece));
      if (!d.ok()) return SpecError(op, spec, d.status().message());
      attr.allowed_types.push_back(*d);
    }
  } else {
    static const std::pair<const char*, AttrType> kKinds[] = {{"int", AttrType::kInt},
                                                              {"float", AttrType::kFloat},
                                                              {"bool", AttrType::kBool},
                                                              {"string", AttrType::kString},
                                                              {"type", AttrType::kType},
                                                              {"shape", AttrType::kShape},
                                                              {"tensor", AttrType::kTensor},
                                                              {"list(int)", AttrType::kIntList},
                                                              {"list(type)", AttrType::kTypeList}};
    bool found = false;
    for (const auto& [name, kind] : kKinds) {
      if (rest == name) {
        attr.type = kind;
        found = true;
      }
    }
    if (!found) return SpecError(op, spec, absl::StrCat("unknown attribute kind '", rest, "'"));
  }
  if (!default_text.empty()) {
    absl::StatusOr<AttrValue> v = ParseDefault(attr.type, default_text);
    if (!v.ok()) return SpecError(op, spec, v.status().message());
    attr.default_value = *v;
  }
  return attr;
}

}  // namespace

const AttrDef* OpDef::FindAttr(absl::string_view name) const {
  for (const AttrDef& a : attrs) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

OpDefBuilder::OpDefBuilder(std::string name) { def_.name = std::move(name); }

OpDefBuilder& OpDefBuilder::Input(absl::string_view spec) {
  absl::StatusOr<ArgDef> arg = ParseArg(def_.name, spec);
  if (arg.ok()) {
    def_.inputs.push_back(*arg);
  } else if (status_.ok()) {
    status_ = arg.status();
  }
  return *this;
}

OpDefBuilder& OpDefBuilder::Output(absl::string_view spec) {
  absl::StatusOr<ArgDef> arg = ParseArg(def_.name, spec);
  if (arg.ok() && arg->is_ref) arg = SpecError(def_.name, spec, "an output cannot be a Ref");
  if (arg.ok()) {
    def_.outputs.push_back(*arg);
  } else if (status_.ok()) {
    status_ = arg.status();
  }
  return *this;
}

OpDefBuilder& OpDefBuilder::Attr(absl::string_view spec) {
  absl::StatusOr<AttrDef> attr = ParseAttr(def_.name, spec);
  if (attr.ok()) {
    def_.attrs.push_back(*attr);
  } else if (status_.ok()) {
    status_ = attr.status();
  }
  return *this;
}

OpDefBuilder& OpDefBuilder::Doc(absl::string_view doc) {
  def_.doc = std::string(doc);
  return *this;
}

OpDefBuilder& OpDefBuilder::SetIsStateful() {
  def_.is_stateful = true;
  return *this;
}

OpDefBuilder& OpDefBuilder::SetShapeFn(ShapeFn fn) {
  def_.shape_fn = std::move(fn);
  return *this;
}

absl::StatusOr<OpDef> OpDefBuilder::Build() const {
  SLUICE_RETURN_IF_ERROR(status_);
  // Every attribute an argument refers to must be declared.
  for (const auto* args : {&def_.inputs, &def_.outputs}) {
    for (const ArgDef& arg : *args) {
      for (const std::string& attr : {arg.type_attr, arg.number_attr}) {
        if (!attr.empty() && def_.FindAttr(attr) == nullptr) {
          return absl::InvalidArgumentError(absl::StrCat("op ", def_.name, ": argument '", arg.name,
                                                         "' uses undeclared attribute '", attr,
                                                         "'"));
        }
      }
    }
  }
  return def_;
}

OpRegistry* OpRegistry::Global() {
  static OpRegistry* registry = new OpRegistry;
  return registry;
}

absl::Status OpRegistry::Register(const OpDefBuilder& builder) {
  SLUICE_ASSIGN_OR_RETURN(OpDef def, builder.Build());
  absl::MutexLock lock(&mu_);
  if (ops_.count(def.name)) {
    return absl::AlreadyExistsError(absl::StrCat("op ", def.name, " is already registered"));
  }
  std::string name = def.name;
  ops_.emplace(std::move(name), std::make_unique<OpDef>(std::move(def)));
  return absl::OkStatus();
}

absl::StatusOr<const OpDef*> OpRegistry::LookUp(absl::string_view op) const {
  absl::MutexLock lock(&mu_);
  auto it = ops_.find(op);
  if (it == ops_.end()) {
    return absl::NotFoundError(absl::StrCat(
        "unknown op '", op, "'",
        ops_.empty() ? " (the registry is empty: start DSL graphs with ops::NewRootScope(), or "
                       "call RegisterAllOps() first)"
                     : ""));
  }
  return it->second.get();
}

std::vector<std::string> OpRegistry::OpNames() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> names;
  for (const auto& [name, def] : ops_) names.push_back(name);
  return names;
}

}  // namespace sluice
