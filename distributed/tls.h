// TLS for every plane: one configuration per process (like the cluster token, auth.h), used by
// every channel (MakeChannel, MakeDataChannel) and server (sluice_server's master, control and
// data services) built after it is set.
//
// A process with a CA verifies the servers it connects to against it; with a certificate and
// key it serves TLS and presents them as its client certificate too (so mutual TLS works
// between servers); `require_client_cert` makes its servers refuse a client that presents no
// certificate signed by the CA. A server certificate must name the address clients dial
// (subjectAltName IP:127.0.0.1, DNS:worker-3.example, ...): gRPC checks the dialled host.
// Without a configuration channels and servers are plaintext. Thread-safe.
//
//   SLUICE_RETURN_IF_ERROR(SetTls({.cert = "w.pem", .key = "w.key", .ca = "ca.pem"}));
//   builder.AddListeningPort(address, ServerCredentials());
#ifndef SLUICE_DISTRIBUTED_TLS_H_
#define SLUICE_DISTRIBUTED_TLS_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "grpcpp/grpcpp.h"

namespace sluice {

// Paths of PEM files; all empty: plaintext.
struct TlsFiles {
  std::string cert;  // This process's certificate chain (its servers', and its client one).
  std::string key;   // Its private key (must not be readable by group or others).
  std::string ca;    // The CA that signs the cluster's certificates.
  bool require_client_cert = false;
};

// Reads the files and makes them this process's configuration (channels and servers built
// afterwards use it; all-empty files turn TLS off). NotFound naming a missing file,
// PermissionDenied for a key readable by others, InvalidArgument for a cert without its key
// (or the reverse), for require_client_cert without a CA, or for a file that holds no PEM.
absl::Status SetTls(const TlsFiles& files);
bool HaveTls();
// Whether this process's servers serve TLS (it has a certificate and key).
bool ServesTls();

// Credentials for a new channel: TLS with the CA (and this process's certificate as the
// client's) when configured, else plaintext.
std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials();
// Credentials for a server's listening port: TLS when this process has a certificate and key,
// else plaintext.
std::shared_ptr<grpc::ServerCredentials> ServerCredentials();

// Who is calling: the identity of the client's verified TLS certificate (its subjectAltNames,
// else its common name, comma-joined); empty without one (plaintext, or no client certificate).
// Servers bind what a client creates (sessions) to it. A null context gives "".
std::string ClientIdentity(const grpc::ServerContextBase* ctx);

}  // namespace sluice

#endif  // SLUICE_DISTRIBUTED_TLS_H_
