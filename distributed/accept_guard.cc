#include "distributed/accept_guard.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace sluice {
namespace {

using AcceptFn = int (*)(int, sockaddr*, socklen_t*, int);

AcceptFn LibcAccept4() {
  static const AcceptFn libc = reinterpret_cast<AcceptFn>(dlsym(RTLD_NEXT, "accept4"));
  return libc;
}

absl::Mutex mu;
int reserve ABSL_GUARDED_BY(mu) = -1;
absl::Time last_report ABSL_GUARDED_BY(mu) = absl::InfinitePast();
int64_t unreported ABSL_GUARDED_BY(mu) = 0;

// Accepts and resets the connections pending on `listener`, with the reserve descriptor freed
// for the purpose. Called when accept4 found no descriptor free.
void RefusePending(int listener) {
  absl::MutexLock lock(&mu);
  if (reserve >= 0) {
    close(reserve);
    reserve = -1;
  }
  int64_t n = 0;
  while (true) {
    const int c = LibcAccept4()(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) break;  // None pending (EAGAIN), or another thread took the free descriptor.
    const linger reset{1, 0};
    setsockopt(c, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
    close(c);
    ++n;
  }
  reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
  unreported += n;
  const absl::Time now = absl::Now();
  if (unreported > 0 && now - last_report >= absl::Seconds(10)) {
    rlimit limit{};
    getrlimit(RLIMIT_NOFILE, &limit);
    std::fprintf(stderr,
                 "sluice_server: out of file descriptors (limit %llu): refused %lld connection(s); "
                 "the ports keep listening\n",
                 static_cast<unsigned long long>(limit.rlim_cur),
                 static_cast<long long>(unreported));
    unreported = 0;
    last_report = now;
  }
  if (n == 0 && reserve < 0) {
    // No descriptor at all, not even to refuse with: the listener stays readable, so gRPC
    // would call again at once. Slow that loop down until descriptors come back.
    absl::SleepFor(absl::Milliseconds(10));
  }
}

}  // namespace

bool ReserveDescriptorForAccept() {
  absl::MutexLock lock(&mu);
  if (reserve < 0) reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
  return reserve >= 0 && LibcAccept4() != nullptr;
}

}  // namespace sluice

// gRPC's listeners call this one (see the header). Everything but a shortage of descriptors
// is libc's answer unchanged.
extern "C" int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
  const sluice::AcceptFn libc = sluice::LibcAccept4();
  if (libc == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  const int r = libc(fd, addr, len, flags);
  if (r >= 0 || (errno != EMFILE && errno != ENFILE)) return r;
  sluice::RefusePending(fd);
  errno = EAGAIN;
  return -1;
}
