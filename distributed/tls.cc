#include "distributed/tls.h"

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "distributed/auth.h"

namespace sluice {
namespace {

struct TlsPems {
  std::string cert, key, ca;
  bool require_client_cert = false;
};

absl::Mutex tls_mu;
TlsPems* tls ABSL_GUARDED_BY(tls_mu) = nullptr;  // Null: plaintext.

TlsPems Current() {
  absl::MutexLock lock(&tls_mu);
  return tls == nullptr ? TlsPems{} : *tls;
}

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* what, bool secret) {
  absl::StatusOr<std::string> text = ReadConfigFile(path, absl::StrCat("TLS ", what), secret);
  if (text.ok() && !absl::StrContains(*text, "-----BEGIN ")) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS ", what, " file ", path, " holds no PEM block"));
  }
  return text;
}

}  // namespace

absl::Status SetTls(const TlsFiles& files) {
  if (files.cert.empty() != files.key.empty()) {
    return absl::InvalidArgumentError(
        "a TLS certificate needs its key and a key its certificate (--tls_cert, --tls_key)");
  }
  if (files.require_client_cert && files.ca.empty()) {
    return absl::InvalidArgumentError(
        "requiring client certificates needs the CA that signs them (--tls_ca)");
  }
  TlsPems pems;
  pems.require_client_cert = files.require_client_cert;
  if (!files.cert.empty()) {
    absl::StatusOr<std::string> cert = ReadPem(files.cert, "certificate", false);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadPem(files.key, "key", true);
    if (!key.ok()) return key.status();
    pems.cert = *std::move(cert);
    pems.key = *std::move(key);
  }
  if (!files.ca.empty()) {
    absl::StatusOr<std::string> ca = ReadPem(files.ca, "CA", false);
    if (!ca.ok()) return ca.status();
    pems.ca = *std::move(ca);
  }
  const bool off = pems.cert.empty() && pems.ca.empty();
  absl::MutexLock lock(&tls_mu);
  delete tls;
  tls = off ? nullptr : new TlsPems(std::move(pems));
  return absl::OkStatus();
}

bool HaveTls() {
  absl::MutexLock lock(&tls_mu);
  return tls != nullptr;
}

bool ServesTls() {
  absl::MutexLock lock(&tls_mu);
  return tls != nullptr && !tls->cert.empty();
}

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials() {
  if (!HaveTls()) return grpc::InsecureChannelCredentials();
  const TlsPems p = Current();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = p.ca;  // Empty: gRPC's default roots.
  options.pem_private_key = p.key;
  options.pem_cert_chain = p.cert;
  return grpc::SslCredentials(options);
}

std::shared_ptr<grpc::ServerCredentials> ServerCredentials() {
  if (!ServesTls()) return grpc::InsecureServerCredentials();
  const TlsPems p = Current();
  grpc::SslServerCredentialsOptions options(
      p.require_client_cert ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                            : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  options.pem_root_certs = p.ca;
  options.pem_key_cert_pairs.push_back({p.key, p.cert});
  return grpc::SslServerCredentials(options);
}

std::string ClientIdentity(const grpc::ServerContextBase* ctx) {
  if (ctx == nullptr) return "";
  std::shared_ptr<const grpc::AuthContext> auth = ctx->auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return "";
  std::string out;
  for (const grpc::string_ref& id : auth->GetPeerIdentity()) {
    if (!out.empty()) out += ",";
    out.append(id.data(), id.size());
  }
  return out;
}

}  // namespace sluice
