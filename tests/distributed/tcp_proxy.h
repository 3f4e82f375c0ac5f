// TcpProxy: a loopback TCP forwarder for tests that need to break one connection of a real
// server (a data-plane connection, say) while the others stay up.
//
// It listens on 127.0.0.1 at an OS-chosen port and forwards every connection it accepts to
// `target`. Sever() resets every connection open at that moment (both sides see a reset, as
// after a keepalive gave up); connections made later are forwarded again. DropTraffic() makes
// the connections open at that moment throw away every byte either way (a silent partition:
// a write "succeeds", nothing arrives). RefuseNew(true) resets every connection as soon as it
// is accepted (a peer that cannot be reached again). Thread-safe.
//
//   auto proxy = TcpProxy::Start(worker.data_address);
//   DataClient client(MakeDataChannel(proxy->address(), -1), {});
//   ...
//   proxy->Sever();
#ifndef SLUICE_TESTS_DISTRIBUTED_TCP_PROXY_H_
#define SLUICE_TESTS_DISTRIBUTED_TCP_PROXY_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace sluice::test {

class TcpProxy {
 public:
  // `target` is "host:port" with a numeric IPv4 host.
  static absl::StatusOr<std::unique_ptr<TcpProxy>> Start(const std::string& target);
  ~TcpProxy();

  std::string address() const;  // "127.0.0.1:<port>"
  void Sever();
  void DropTraffic();
  void RefuseNew(bool refuse);
  int connections_accepted() const;  // Forwarded ones (not those refused).

 private:
  struct Link {
    int client_fd;
    int target_fd;
    std::shared_ptr<std::atomic<bool>> dropping;
  };
  TcpProxy(int listen_fd, int port, std::string target_host, int target_port);
  void AcceptLoop();
  static void Pump(int from, int to, const std::atomic<bool>& dropping);

  const int listen_fd_;
  const int port_;
  const std::string target_host_;
  const int target_port_;
  int wake_[2] = {-1, -1};  // A pipe that ends AcceptLoop.
  std::thread acceptor_;
  mutable absl::Mutex mu_;
  std::vector<Link> links_ ABSL_GUARDED_BY(mu_);  // Open links; fds closed by their pumps' end.
  std::vector<std::thread> pumps_ ABSL_GUARDED_BY(mu_);
  int accepted_ ABSL_GUARDED_BY(mu_) = 0;
  bool refuse_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace sluice::test

#endif  // SLUICE_TESTS_DISTRIBUTED_TCP_PROXY_H_
