// Cluster authentication by a shared token: every call of every service (master, control and
// data planes, heartbeats, workers' calls to each other) carries the cluster's token in its
// metadata, and a server whose process has a token refuses a call without it (or with another)
// with UNAUTHENTICATED, counted, before doing anything else. One token per process: a process
// belongs to one cluster. Without TLS the token travels in clear (docs/security.md): it keeps
// out whoever can reach the ports but cannot read the traffic.
//
// The token comes from a file (--cluster_token_file, which must not be readable by group or
// others) or the environment (SLUICE_CLUSTER_TOKEN), never from a command line that `ps` shows.
//
//   SLUICE_RETURN_IF_ERROR(SetClusterToken(*LoadClusterToken(path)));   // before any channel
//   grpc::Status s = CheckClusterToken(*ctx);   // first thing in a handler
#ifndef SLUICE_DISTRIBUTED_AUTH_H_
#define SLUICE_DISTRIBUTED_AUTH_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/client_interceptor.h"

namespace sluice {

inline constexpr char kClusterTokenMetadata[] = "sluice-cluster-token";
inline constexpr char kClusterTokenEnv[] = "SLUICE_CLUSTER_TOKEN";

// Sets this process's token (empty: none; calls are then neither signed nor checked).
// InvalidArgument for a token with characters gRPC metadata cannot carry.
absl::Status SetClusterToken(std::string token);
bool HaveClusterToken();

// The token in `path` (surrounding whitespace dropped): NotFound for a missing file,
// PermissionDenied when group or others may read it, InvalidArgument when empty.
absl::StatusOr<std::string> LoadClusterToken(const std::string& path);

// The contents of the `what` file `path` ("cluster token", "TLS key", ...): NotFound when it is
// missing, PermissionDenied when `owner_only` and group or others may read it; errors say
// "<what> file <path> ...".
absl::StatusOr<std::string> ReadConfigFile(const std::string& path, absl::string_view what,
                                           bool owner_only);

// OK when this process has no token or the call carries it; else UNAUTHENTICATED (counted).
// A null context (a handler called in process, not over the network) passes.
grpc::Status CheckClusterToken(const grpc::ServerContextBase* ctx);
// Calls refused so far by this process.
int64_t UnauthenticatedCalls();

// Interceptors that add the process's token to every call of a channel (MakeChannel and
// MakeDataChannel use them).
std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
ClusterTokenInterceptors();

}  // namespace sluice

#endif  // SLUICE_DISTRIBUTED_AUTH_H_
