#include "tests/distributed/tcp_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace sluice::test {
namespace {

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

sockaddr_in Ipv4(const std::string& host, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, host.c_str(), &a.sin_addr);
  return a;
}

// Makes close() send a reset instead of a graceful end: the peer sees the connection die.
void ResetOnClose(int fd) {
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}

}  // namespace

absl::StatusOr<std::unique_ptr<TcpProxy>> TcpProxy::Start(const std::string& target) {
  const size_t colon = target.rfind(':');
  int target_port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(target.substr(colon + 1), &target_port)) {
    return absl::InvalidArgumentError(absl::StrCat("TcpProxy: bad target '", target, "'"));
  }
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket");
  sockaddr_in any = Ipv4("127.0.0.1", 0);
  socklen_t len = sizeof(any);
  if (bind(fd, reinterpret_cast<sockaddr*>(&any), sizeof(any)) != 0 || listen(fd, 16) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&any), &len) != 0) {
    absl::Status s = Errno("bind/listen");
    close(fd);
    return s;
  }
  std::unique_ptr<TcpProxy> proxy(
      new TcpProxy(fd, ntohs(any.sin_port), target.substr(0, colon), target_port));
  if (pipe2(proxy->wake_, O_CLOEXEC) != 0) return Errno("pipe");
  proxy->acceptor_ = std::thread([p = proxy.get()] { p->AcceptLoop(); });
  return proxy;
}

TcpProxy::TcpProxy(int listen_fd, int port, std::string target_host, int target_port)
    : listen_fd_(listen_fd),
      port_(port),
      target_host_(std::move(target_host)),
      target_port_(target_port) {}

TcpProxy::~TcpProxy() {
  if (acceptor_.joinable()) {
    char c = 0;
    (void)!write(wake_[1], &c, 1);
    acceptor_.join();
  }
  Sever();
  std::vector<std::thread> pumps;
  {
    absl::MutexLock lock(&mu_);
    pumps.swap(pumps_);
  }
  for (auto& t : pumps) t.join();
  close(listen_fd_);
  for (int fd : wake_) {
    if (fd >= 0) close(fd);
  }
}

std::string TcpProxy::address() const { return absl::StrCat("127.0.0.1:", port_); }

int TcpProxy::connections_accepted() const {
  absl::MutexLock lock(&mu_);
  return accepted_;
}

void TcpProxy::Sever() {
  absl::MutexLock lock(&mu_);
  for (const Link& link : links_) {
    for (int fd : {link.client_fd, link.target_fd}) {
      ResetOnClose(fd);
      shutdown(fd, SHUT_RDWR);  // Wakes the pump, which closes both ends.
    }
  }
}

void TcpProxy::DropTraffic() {
  absl::MutexLock lock(&mu_);
  for (const Link& link : links_) link.dropping->store(true);
}

void TcpProxy::RefuseNew(bool refuse) {
  absl::MutexLock lock(&mu_);
  refuse_ = refuse;
}

void TcpProxy::AcceptLoop() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    {
      absl::MutexLock lock(&mu_);
      if (refuse_) {
        ResetOnClose(client);
        close(client);
        continue;
      }
    }
    const int upstream = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in to = Ipv4(target_host_, target_port_);
    if (upstream < 0 || connect(upstream, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) {
      if (upstream >= 0) close(upstream);
      close(client);
      continue;
    }
    absl::MutexLock lock(&mu_);
    ++accepted_;
    auto dropping = std::make_shared<std::atomic<bool>>(false);
    links_.push_back({client, upstream, dropping});
    pumps_.emplace_back([this, client, upstream, dropping] {
      Pump(client, upstream, *dropping);
      absl::MutexLock lock(&mu_);  // Sever must not touch the fds once they are closed.
      links_.erase(std::remove_if(links_.begin(), links_.end(),
                                  [&](const Link& l) { return l.client_fd == client; }),
                   links_.end());
      close(client);
      close(upstream);
    });
  }
}

// Copies bytes both ways until either side ends or fails.
void TcpProxy::Pump(int a, int b, const std::atomic<bool>& dropping) {
  char buf[64 << 10];
  while (true) {
    pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].revents == 0) continue;
      const ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n <= 0) return;
      if (dropping.load()) continue;  // Read and thrown away: the sender's kernel acks it.
      const int out = i == 0 ? b : a;
      for (ssize_t done = 0; done < n;) {
        const ssize_t w = send(out, buf + done, n - done, MSG_NOSIGNAL);
        if (w <= 0) return;
        done += w;
      }
    }
  }
}

}  // namespace sluice::test
