// Checkpoints: save the values of a session's variables to a file and restore them, by
// variable name (the Variable node's "shared_name", else its node name: the ResourceMgr name).
// The file format is specified in docs/checkpoint_format.md: a header, one entry per variable
// (name, dtype, shape, raw little-endian bytes) and a CRC-32C of everything before it.
//
// Saving writes a temporary file beside `path`, fsyncs it, renames it over `path` and fsyncs
// the directory: a crash leaves either the old file or the new one, never a mix. Every variable
// saved must be initialised, else nothing is written.
//
// Restoring reads and checks the whole file first (size, magic, version, checksum, entry
// layout), then checks every requested variable against the graph (it must be a variable of
// the graph and of the checkpoint, with the graph's dtype and a shape compatible with the
// declared one), and only then assigns the values. Any error leaves every variable untouched:
//   DataLoss          truncated, corrupted or malformed file (the message says which)
//   NotFound          a requested name missing from the graph or from the checkpoint
//   InvalidArgument   dtype or shape mismatch; a checkpoint variable the graph does not have
//                     (when restoring everything)
// With `names` empty, Save writes every variable of the graph and Restore requires the
// checkpoint's variables to be exactly the graph's; with `names`, only those.
//
// Thread-safety: safe to call while steps run; each variable is read or written under its own
// lock, so each is consistent, but a save taken during a training step may mix values from
// before and after that step's updates.
//
//   SLUICE_RETURN_IF_ERROR(SaveCheckpoint(*session, "/tmp/model.ckpt"));
//   SLUICE_RETURN_IF_ERROR(RestoreCheckpoint(*other_session, "/tmp/model.ckpt"));
//   SLUICE_RETURN_IF_ERROR(RestoreCheckpoint(*session, path, {"w1", "b1"}));   // a subset
#ifndef SLUICE_RUNTIME_SESSION_CHECKPOINT_H_
#define SLUICE_RUNTIME_SESSION_CHECKPOINT_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "graph/graph.h"
#include "runtime/kernel/resource_mgr.h"
#include "runtime/session/session.h"

namespace sluice {

absl::Status SaveCheckpoint(Session& session, const std::string& path,
                            const std::vector<std::string>& names = {});
absl::Status RestoreCheckpoint(Session& session, const std::string& path,
                               const std::vector<std::string>& names = {});

// The same for any graph and the ResourceMgr that holds its variables.
absl::Status SaveVariables(const Graph& graph, ResourceMgr& resources, const std::string& path,
                           const std::vector<std::string>& names = {});
absl::Status RestoreVariables(const Graph& graph, ResourceMgr& resources, const std::string& path,
                              const std::vector<std::string>& names = {});

// Reads and fully checks a checkpoint file: its entries in file order (sorted by name).
absl::StatusOr<std::vector<std::pair<std::string, Tensor>>> ReadCheckpoint(const std::string& path);

// The pieces of Save/Restore, for sessions whose variables live elsewhere (a remote session
// reads and assigns them with steps).
// The variable names a save of `names` covers (all of the graph's when empty); NotFound for a
// name that is not a variable of `graph`.
absl::StatusOr<std::vector<std::string>> VariablesToSave(const Graph& graph,
                                                         const std::string& path,
                                                         const std::vector<std::string>& names);
// Writes `entries` (any order; names unique) atomically as a checkpoint file.
absl::Status WriteCheckpoint(const std::string& path,
                             std::vector<std::pair<std::string, Tensor>> entries);
// Reads `path` and checks it against `graph` exactly as a restore of `names` does (the errors
// listed above); returns the values to assign, by variable name.
absl::StatusOr<std::vector<std::pair<std::string, Tensor>>> ReadCheckpointForRestore(
    const Graph& graph, const std::string& path, const std::vector<std::string>& names);

}  // namespace sluice

#endif  // SLUICE_RUNTIME_SESSION_CHECKPOINT_H_
