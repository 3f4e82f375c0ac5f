// Status helpers shared by every layer.
//
// Fallible functions return absl::Status or absl::StatusOr<T>; these macros keep the early-return
// plumbing short. Thread-safe: stateless.
//
//   absl::StatusOr<Tensor> Load(...);
//   absl::Status Use() {
//     ASSIGN_OR_RETURN(Tensor t, Load(...));
//     RETURN_IF_ERROR(Check(t));
//     return absl::OkStatus();
//   }
#ifndef SLUICE_CORE_STATUS_H_
#define SLUICE_CORE_STATUS_H_

#include "absl/strings/string_view.h"
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace sluice {

// Returns `status` with `context` prepended to its message ("context: message"); OK stays OK.
absl::Status AnnotateStatus(const absl::Status& status, absl::string_view context);

}  // namespace sluice

#define SLUICE_STATUS_CONCAT_INNER_(a, b) a##b
#define SLUICE_STATUS_CONCAT_(a, b) SLUICE_STATUS_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                      \
  do {                                             \
    ::absl::Status sluice_status_ = (expr);        \
    if (!sluice_status_.ok()) return sluice_status_; \
  } while (0)

#define ASSIGN_OR_RETURN(lhs, expr) \
  SLUICE_ASSIGN_OR_RETURN_IMPL_(SLUICE_STATUS_CONCAT_(sluice_statusor_, __LINE__), lhs, expr)

#define SLUICE_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // SLUICE_CORE_STATUS_H_
