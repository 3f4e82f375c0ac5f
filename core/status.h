// Status helpers shared by every layer.
//
// Fallible functions return absl::Status or absl::StatusOr<T>; these macros keep the early-return
// plumbing short. Thread-safe: stateless.
//
//   absl::StatusOr<Tensor> Load(...);
//   absl::Status Use() {
//     SLUICE_ASSIGN_OR_RETURN(Tensor t, Load(...));
//     SLUICE_RETURN_IF_ERROR(Check(t));
//     return absl::OkStatus();
//   }
#ifndef SLUICE_CORE_STATUS_H_
#define SLUICE_CORE_STATUS_H_

#include <utility>

#include "absl/base/optimization.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace sluice {

// Returns `status` with `context` prepended to its message ("context: message"); OK stays OK.
absl::Status AnnotateStatus(const absl::Status& status, absl::string_view context);

}  // namespace sluice

#define SLUICE_STATUS_CONCAT_INNER_(a, b) a##b
#define SLUICE_STATUS_CONCAT_(a, b) SLUICE_STATUS_CONCAT_INNER_(a, b)

// Returns the status of `expr` from the enclosing function when it is not OK.
#define SLUICE_RETURN_IF_ERROR(expr)                      \
  do {                                                    \
    ::absl::Status sluice_status_macro_ = (expr);         \
    if (ABSL_PREDICT_FALSE(!sluice_status_macro_.ok())) { \
      return sluice_status_macro_;                        \
    }                                                     \
  } while (0)

// Evaluates `expr` (an absl::StatusOr<T>); returns its status when not OK, else moves the value
// into `lhs` (a declaration such as `Tensor t` or an existing variable). Each use gets its own
// temporary (__COUNTER__), so two uses on one line do not collide.
#define SLUICE_ASSIGN_OR_RETURN(lhs, expr) \
  SLUICE_ASSIGN_OR_RETURN_IMPL_(SLUICE_STATUS_CONCAT_(sluice_statusor_, __COUNTER__), lhs, expr)

#define SLUICE_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr)                     \
  auto statusor = (expr);                                                      \
  if (ABSL_PREDICT_FALSE(!statusor.ok())) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // SLUICE_CORE_STATUS_H_
