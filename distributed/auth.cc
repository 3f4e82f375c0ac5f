#include "distributed/auth.h"

#include <sys/stat.h>

#include <atomic>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"

namespace sluice {
namespace {

absl::Mutex token_mu(absl::kConstInit);
std::string* token ABSL_GUARDED_BY(token_mu) = nullptr;  // Never freed: read by any thread.
std::atomic<int64_t> refused{0};

std::string Token() {
  absl::MutexLock lock(&token_mu);
  return token == nullptr ? std::string() : *token;
}

// Equal contents in time that does not depend on where they differ.
bool SameSecret(absl::string_view a, absl::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= a[i] ^ b[i % (b.empty() ? 1 : b.size())];
  return diff == 0 && !b.empty();
}

class TokenInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit TokenInterceptor(std::string token) : token_(std::move(token)) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace(kClusterTokenMetadata, token_);
    }
    methods->Proceed();
  }

 private:
  const std::string token_;
};

class TokenInterceptorFactory : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    std::string t = Token();
    return t.empty() ? nullptr : new TokenInterceptor(std::move(t));
  }
};

}  // namespace

absl::Status SetClusterToken(std::string value) {
  for (char c : value) {
    if (c < 0x20 || c > 0x7e) {
      return absl::InvalidArgumentError(
          "a cluster token must be printable ASCII (it travels as gRPC metadata)");
    }
  }
  absl::MutexLock lock(&token_mu);
  if (token == nullptr) token = new std::string;
  *token = std::move(value);
  return absl::OkStatus();
}

bool HaveClusterToken() { return !Token().empty(); }

absl::StatusOr<std::string> ReadConfigFile(const std::string& path, absl::string_view what,
                                           bool owner_only) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat(what, " file ", path, " does not exist"));
  }
  if (owner_only && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    return absl::PermissionDeniedError(
        absl::StrCat(what, " file ", path, " may be read by group or others (chmod 600 it)"));
  }
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::StatusOr<std::string> LoadClusterToken(const std::string& path) {
  absl::StatusOr<std::string> text = ReadConfigFile(path, "cluster token", /*owner_only=*/true);
  if (!text.ok()) return text.status();
  std::string value(absl::StripAsciiWhitespace(*text));
  if (value.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("cluster token file ", path, " is empty"));
  }
  return value;
}

grpc::Status CheckClusterToken(const grpc::ServerContextBase* ctx) {
  const std::string want = Token();
  if (want.empty() || ctx == nullptr) return grpc::Status::OK;
  const auto& metadata = ctx->client_metadata();
  auto it = metadata.find(kClusterTokenMetadata);
  if (it != metadata.end() &&
      SameSecret(absl::string_view(it->second.data(), it->second.size()), want)) {
    return grpc::Status::OK;
  }
  refused.fetch_add(1);
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      it == metadata.end()
                          ? "this cluster requires its token on every call; the call had none"
                          : "the call's cluster token is not this cluster's");
}

int64_t UnauthenticatedCalls() { return refused.load(); }

std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
ClusterTokenInterceptors() {
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> out;
  out.push_back(std::make_unique<TokenInterceptorFactory>());
  return out;
}

}  // namespace sluice
