// MetricsHttpServer: serves a Metrics registry's text at GET /metrics over HTTP, with Debian's
// cpp-httplib (no hand-written HTTP), on its own thread. Other paths answer 404. Start binds
// before it returns (port 0: the OS chooses; `port()` says which). Thread-safe; Stop is
// idempotent and the destructor calls it.
//
//   SLUICE_ASSIGN_OR_RETURN(auto http, MetricsHttpServer::Start("127.0.0.1", 0, &metrics));
//   // curl http://127.0.0.1:<http->port()>/metrics
#ifndef SLUICE_DISTRIBUTED_METRICS_HTTP_H_
#define SLUICE_DISTRIBUTED_METRICS_HTTP_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "distributed/metrics.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace sluice {

class MetricsHttpServer {
 public:
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(const std::string& host, int port,
                                                                  const Metrics* metrics);
  ~MetricsHttpServer();

  int port() const { return port_; }
  void Stop();

 private:
  MetricsHttpServer() = default;

  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace sluice

#endif  // SLUICE_DISTRIBUTED_METRICS_HTTP_H_
