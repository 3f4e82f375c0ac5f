// Data-plane and control-plane benchmark between two processes on loopback.
//
// Transfer: this process sends tensors of 64 KiB, 1 MiB and 64 MiB to a real sluice_server over
// its data plane (chunked, zero-copy send) and compares the throughput with peers measured in
// the same run: a raw TCP socket program (a forked child) that reads every tensor into one reused
// buffer ("raw TCP"), the same program holding every tensor of a round in its own buffer as the
// Sluice receiver does ("TCP keep"), and a plain gRPC stream of protobuf `bytes` messages
// (TensorProto chunks, the payload copied into and out of protobuf; the same transport settings).
// Each round sends enough tensors for ~256 MiB and ends when the receiver acknowledged all of them.
// Control plane: Heartbeat round trips to the same server, idle and while another thread keeps its
// data plane saturated with 64 MiB tensors; p50 and p99 (medians over interleaved idle/loaded
// rounds).
//
//   bazel run -c opt //bench:transfer_bench
//   bazel-bin/bench/transfer_bench --out=results.json   # also writes the figures as JSON
//   bazel-bin/bench/transfer_bench --sizes=1048576       # only these tensor sizes (bytes)
//
// BENCH_REPETITIONS (default 3) rounds per size, interleaved across the transports;
// medians are reported. bench/run_all.sh runs it and puts the ratios in its table.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "core/tensor.h"
#include "core/tensor.pb.h"
#include "distributed/data_plane.h"
#include "distributed/grpc_util.h"
#include "distributed/local_cluster.h"
#include "distributed/protocol.grpc.pb.h"
#include "grpcpp/impl/rpc_service_method.h"
#include "grpcpp/support/method_handler.h"

namespace sluice {
namespace {

constexpr char kProtoMethod[] = "/bench.ProtoBytes/Push";
constexpr int64_t kChunk = 1 << 20;

bool WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) return false;
    p += w;
    n -= w;
  }
  return true;
}
bool ReadAll(int fd, char* p, size_t n) {
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= r;
  }
  return true;
}

// Raw TCP peer: per round reads [u64 size][u64 count][u64 keep] and count*size bytes, then acks
// with one byte. keep == 0: every tensor lands in one reused buffer (a warm sink, the cheapest
// receiver possible). keep == 1: every tensor of the round gets its own buffer and all of them
// are held until the round ends, as the Sluice receiver holds a step's tensors until the step
// ends; the buffers are reused across rounds, as Sluice's buffer cache reuses its buffers.
void RawTcpServer(int listen_fd) {
  int fd = accept(listen_fd, nullptr, nullptr);
  std::vector<std::vector<char>> bufs;
  uint64_t head[3];
  while (ReadAll(fd, reinterpret_cast<char*>(head), sizeof(head))) {
    const uint64_t buffers = head[2] != 0 ? head[1] : 1;
    bufs.resize(buffers);  // Frees a previous round's extra buffers.
    for (uint64_t i = 0; i < head[1]; ++i) {
      std::vector<char>& buf = bufs[head[2] != 0 ? i : 0];
      if (buf.size() != head[0]) buf.assign(head[0], 0);
      if (!ReadAll(fd, buf.data(), head[0])) _exit(1);
    }
    char ack = 1;
    WriteAll(fd, &ack, 1);
  }
  _exit(0);
}

// Protobuf-bytes gRPC peer: each message is a TensorProto whose `content` holds a chunk.
class ProtoBytesService : public grpc::Service {
 public:
  ProtoBytesService() {
    AddMethod(new grpc::internal::RpcServiceMethod(
        kProtoMethod, grpc::internal::RpcMethod::CLIENT_STREAMING,
        new grpc::internal::ClientStreamingHandler<ProtoBytesService, grpc::ByteBuffer,
                                                   grpc::ByteBuffer>(
            [](ProtoBytesService*, grpc::ServerContext*,
               grpc::ServerReader<grpc::ByteBuffer>* reader, grpc::ByteBuffer* resp) {
              grpc::ByteBuffer msg;
              proto::TensorProto t;
              int64_t bytes = 0;
              while (reader->Read(&msg)) {
                ParseFromByteBuffer(msg, &t);
                bytes += t.content().size();
              }
              proto::TensorProto out;
              out.set_content(std::to_string(bytes));
              *resp = SerializeToByteBuffer(out);
              return grpc::Status::OK;
            },
            this)));
  }
};

// TCP ping-pong peer: echoes every byte back (TCP_NODELAY), the control-plane latency peer.
void EchoServer(int listen_fd) {
  int fd = accept(listen_fd, nullptr, nullptr);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  char c;
  while (ReadAll(fd, &c, 1) && WriteAll(fd, &c, 1)) {
  }
  _exit(0);
}

int ConnectLoopback(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) std::abort();
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

int ListenLoopback(int* port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
  listen(fd, 4);
  socklen_t len = sizeof(sa);
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  *port = ntohs(sa.sin_port);
  return fd;
}

double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

int64_t CountFor(int64_t size) { return std::max<int64_t>(4, (int64_t{256} << 20) / size); }

double SluiceGBps(DataClient* client, proto::Control::Stub* control, int64_t size, int64_t* step) {
  Tensor t(DType::kInt32, TensorShape({size / 4}));
  std::memset(t.raw_data(), 7, size);
  const int64_t n = CountFor(size);
  const int64_t s = ++*step;
  absl::Time start = absl::Now();
  for (int64_t i = 0; i < n; ++i) {
    if (!client->Push(s, absl::StrCat("t", i), t).ok()) std::abort();
  }
  if (!client->Close().ok()) std::abort();  // Returns once the server received everything.
  double secs = Seconds(absl::Now() - start);
  proto::AbortStepRequest req;  // Frees what the server buffered.
  req.set_protocol_version(kProtocolVersion);
  req.set_step_id(s);
  proto::AbortStepResponse resp;
  grpc::ClientContext ctx;
  control->AbortStep(&ctx, req, &resp);
  return n * size / secs / 1e9;
}

double RawTcpGBps(int fd, int64_t size, bool keep) {
  std::vector<char> buf(size, 7);
  const int64_t n = CountFor(size);
  absl::Time start = absl::Now();
  uint64_t head[3] = {static_cast<uint64_t>(size), static_cast<uint64_t>(n), keep ? 1u : 0u};
  WriteAll(fd, reinterpret_cast<char*>(head), sizeof(head));
  for (int64_t i = 0; i < n; ++i) WriteAll(fd, buf.data(), size);
  char ack;
  ReadAll(fd, &ack, 1);
  return n * size / Seconds(absl::Now() - start) / 1e9;
}

double ProtoGBps(grpc::Channel* channel, int64_t size) {
  std::vector<char> buf(size, 7);
  const int64_t n = CountFor(size);
  absl::Time start = absl::Now();
  grpc::ClientContext ctx;
  grpc::ByteBuffer resp;
  grpc::internal::RpcMethod method(kProtoMethod, grpc::internal::RpcMethod::CLIENT_STREAMING);
  std::unique_ptr<grpc::ClientWriter<grpc::ByteBuffer>> w(
      grpc::internal::ClientWriterFactory<grpc::ByteBuffer>::Create(channel, method, &ctx, &resp));
  proto::TensorProto t;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t off = 0; off < size; off += kChunk) {
      t.set_content(buf.data() + off, std::min(kChunk, size - off));
      w->Write(SerializeToByteBuffer(t));
    }
  }
  w->WritesDone();
  if (!w->Finish().ok()) std::abort();
  return n * size / Seconds(absl::Now() - start) / 1e9;
}

std::pair<double, double> P50P99(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  return {us[us.size() / 2], us[us.size() * 99 / 100]};
}

std::pair<double, double> PingPongP50P99(int fd, int samples) {
  std::vector<double> us;
  char c = 1;
  for (int i = 0; i < samples; ++i) {
    absl::Time t0 = absl::Now();
    if (!WriteAll(fd, &c, 1) || !ReadAll(fd, &c, 1)) std::abort();
    us.push_back(absl::ToDoubleMicroseconds(absl::Now() - t0));
  }
  return P50P99(std::move(us));
}

std::pair<double, double> HeartbeatP50P99(proto::Control::Stub* stub, int samples) {
  std::vector<double> us;
  proto::HeartbeatRequest req;
  req.set_protocol_version(kProtocolVersion);
  for (int i = 0; i < samples; ++i) {
    proto::HeartbeatResponse resp;
    grpc::ClientContext ctx;
    absl::Time t0 = absl::Now();
    stub->Heartbeat(&ctx, req, &resp);
    us.push_back(absl::ToDoubleMicroseconds(absl::Now() - t0));
  }
  return P50P99(std::move(us));
}

std::string SizeLabel(int64_t bytes) {
  if (bytes % (1 << 20) == 0) return absl::StrCat(bytes >> 20, " MiB");
  if (bytes % (1 << 10) == 0) return absl::StrCat(bytes >> 10, " KiB");
  return absl::StrCat(bytes, " B");
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Latency {
  double idle_p50, idle_p99, loaded_p50, loaded_p99;
};

// `rounds` times: `sample` idle, then `sample` while `load` runs on another thread (from its
// start until told to stop). Medians over rounds of each percentile.
Latency IdleAndLoaded(int rounds, const std::function<std::pair<double, double>()>& sample,
                      const std::function<void(const std::atomic<bool>& stop)>& load) {
  std::vector<double> idle50, idle99, loaded50, loaded99;
  for (int r = 0; r < rounds; ++r) {
    auto idle = sample();
    idle50.push_back(idle.first);
    idle99.push_back(idle.second);
    std::atomic<bool> stop{false}, started{false};
    std::thread loader([&] {
      started = true;
      load(stop);
    });
    while (!started) std::this_thread::yield();
    auto loaded = sample();
    stop = true;
    loader.join();
    loaded50.push_back(loaded.first);
    loaded99.push_back(loaded.second);
  }
  return {Median(idle50), Median(idle99), Median(loaded50), Median(loaded99)};
}

int Main(const char* argv0, const char* json_path, const std::vector<int64_t>& sizes) {
  // The gRPC peer runs on the polling engine Sluice selects (inherited through fork).
  SelectGrpcPollingEngine();
  std::printf("gRPC polling engine: %s\n", std::getenv("GRPC_POLL_STRATEGY"));
  // Peers first, before this process starts any gRPC thread (fork and gRPC do not mix).
  int tcp_port = 0;
  int tcp_listen = ListenLoopback(&tcp_port);
  pid_t tcp_child = fork();
  if (tcp_child == 0) RawTcpServer(tcp_listen);
  close(tcp_listen);
  int echo_port = 0;
  int echo_listen = ListenLoopback(&echo_port);
  pid_t echo_child = fork();
  if (echo_child == 0) EchoServer(echo_listen);
  close(echo_listen);
  int proto_pipe[2];
  if (pipe(proto_pipe) != 0) return 1;
  pid_t proto_child = fork();
  if (proto_child == 0) {
    KeepFreedHeapMemoryForReuse();  // As sluice_server does: a fair peer.
    ProtoBytesService service;
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.SetMaxReceiveMessageSize(-1);
    TuneForBulkData(&b);  // The same transport settings as the data plane: a fair peer.
    b.RegisterService(&service);
    auto server = b.BuildAndStart();
    WriteAll(proto_pipe[1], reinterpret_cast<char*>(&port), sizeof(port));
    server->Wait();
    _exit(0);
  }
  int proto_port = 0;
  ReadAll(proto_pipe[0], reinterpret_cast<char*>(&proto_port), sizeof(proto_port));

  LocalClusterOptions opts;
  const char* dir = std::getenv("RUNFILES_DIR");
  opts.server_binary = dir ? absl::StrCat(dir, "/sluice/distributed/sluice_server")
                           : absl::StrCat(argv0, ".runfiles/sluice/distributed/sluice_server");
  opts.num_workers = 1;
  opts.start_master = false;
  auto cluster = LocalCluster::Start(opts);
  if (!cluster.ok()) {
    std::fprintf(stderr, "%s\n", cluster.status().ToString().c_str());
    return 1;
  }
  const auto& w = (*cluster)->worker(0);
  auto control = proto::Control::NewStub(MakeChannel(w.control_address));
  DataClient data(MakeDataChannel(w.data_address), {.chunk_bytes = kChunk});
  auto proto_channel = MakeDataChannel(absl::StrCat("127.0.0.1:", proto_port), -1);
  int tcp = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(tcp_port);
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  connect(tcp, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));

  const int reps =
      std::getenv("BENCH_REPETITIONS") ? std::atoi(std::getenv("BENCH_REPETITIONS")) : 3;
  int64_t step = 0;
  std::printf("%-8s %9s %9s %9s %9s %11s %11s %11s\n", "size", "sluice", "raw TCP", "TCP keep",
              "pb-gRPC", "vs raw TCP", "vs TCP keep", "vs pb-gRPC");
  std::string json = "{\"transfer\": [";
  for (int64_t size : sizes) {
    std::vector<double> a, b, k, c;
    SluiceGBps(&data, control.get(), size, &step);  // Warm-up.
    RawTcpGBps(tcp, size, /*keep=*/false);
    RawTcpGBps(tcp, size, /*keep=*/true);
    ProtoGBps(proto_channel.get(), size);
    for (int r = 0; r < reps; ++r) {  // Interleaved so load bursts hit all of them alike.
      a.push_back(SluiceGBps(&data, control.get(), size, &step));
      b.push_back(RawTcpGBps(tcp, size, /*keep=*/false));
      k.push_back(RawTcpGBps(tcp, size, /*keep=*/true));
      c.push_back(ProtoGBps(proto_channel.get(), size));
    }
    const double sluice = Median(a), tcp_sink = Median(b), tcp_keep = Median(k),
                 pb_grpc = Median(c);
    std::printf("%-8s %9.2f %9.2f %9.2f %9.2f %10.2fx %10.2fx %10.2fx\n", SizeLabel(size).c_str(),
                sluice, tcp_sink, tcp_keep, pb_grpc, sluice / tcp_sink, sluice / tcp_keep,
                sluice / pb_grpc);
    absl::StrAppend(&json, size == sizes.front() ? "" : ", ", "{\"bytes\": ", size,
                    ", \"sluice_gbps\": ", sluice, ", \"tcp_gbps\": ", tcp_sink,
                    ", \"tcp_keep_gbps\": ", tcp_keep, ", \"pb_grpc_gbps\": ", pb_grpc, "}");
  }
  // Control round trips, idle and while a 64 MiB stream saturates the data plane, in `reps`
  // interleaved rounds (medians over rounds), so a burst of load from elsewhere on the machine
  // does not land on one side only. The peer: TCP ping-pong under a raw TCP stream.
  const int echo = ConnectLoopback(echo_port);
  Latency tcp_lat = IdleAndLoaded(
      reps, [&] { return PingPongP50P99(echo, 1000); },
      [&](const std::atomic<bool>& stop) {
        while (!stop) RawTcpGBps(tcp, int64_t{64} << 20, /*keep=*/false);
      });
  close(echo);
  DataClient bulk(MakeDataChannel(w.data_address), {.chunk_bytes = kChunk});
  int64_t bulk_step = 1 << 30;
  Latency lat = IdleAndLoaded(
      reps, [&] { return HeartbeatP50P99(control.get(), 1000); },
      [&](const std::atomic<bool>& stop) {
        while (!stop) SluiceGBps(&bulk, control.get(), int64_t{64} << 20, &bulk_step);
      });
  auto idle = std::make_pair(lat.idle_p50, lat.idle_p99);
  auto loaded = std::make_pair(lat.loaded_p50, lat.loaded_p99);
  auto tcp_idle = std::make_pair(tcp_lat.idle_p50, tcp_lat.idle_p99);
  auto tcp_loaded = std::make_pair(tcp_lat.loaded_p50, tcp_lat.loaded_p99);
  std::printf("control RTT idle:   p50 %.0f us, p99 %.0f us\n", idle.first, idle.second);
  std::printf("control RTT loaded: p50 %.0f us, p99 %.0f us  (p99 loaded/idle %.2fx)\n",
              loaded.first, loaded.second, loaded.second / idle.second);
  std::printf("TCP ping-pong idle:   p50 %.0f us, p99 %.0f us\n", tcp_idle.first, tcp_idle.second);
  std::printf("TCP ping-pong loaded: p50 %.0f us, p99 %.0f us  (p99 loaded/idle %.2fx)\n",
              tcp_loaded.first, tcp_loaded.second, tcp_loaded.second / tcp_idle.second);
  absl::StrAppend(&json, "], \"control_us\": {\"idle_p50\": ", idle.first,
                  ", \"idle_p99\": ", idle.second, ", \"loaded_p50\": ", loaded.first,
                  ", \"loaded_p99\": ", loaded.second,
                  "}, \"tcp_ping_pong_us\": {\"idle_p50\": ", tcp_idle.first,
                  ", \"idle_p99\": ", tcp_idle.second, ", \"loaded_p50\": ", tcp_loaded.first,
                  ", \"loaded_p99\": ", tcp_loaded.second, "}}\n");
  if (json_path != nullptr) {
    FILE* f = std::fopen(json_path, "w");
    if (f == nullptr || std::fputs(json.c_str(), f) < 0 || std::fclose(f) != 0) {
      std::fprintf(stderr, "cannot write %s\n", json_path);
      return 1;
    }
  }
  close(tcp);
  kill(proto_child, SIGTERM);
  waitpid(echo_child, nullptr, 0);
  waitpid(tcp_child, nullptr, 0);
  waitpid(proto_child, nullptr, 0);
  return 0;
}

}  // namespace
}  // namespace sluice

int main(int argc, char** argv) {
  const char* json_path = nullptr;
  std::vector<int64_t> sizes = {int64_t{64} << 10, int64_t{1} << 20, int64_t{64} << 20};
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--out=", 6) == 0) {
      json_path = argv[i] + 6;
    } else if (std::strncmp(argv[i], "--sizes=", 8) == 0) {
      sizes.clear();
      for (absl::string_view part : absl::StrSplit(argv[i] + 8, ',')) {
        int64_t bytes = 0;
        if (!absl::SimpleAtoi(part, &bytes) || bytes < 4 || bytes % 4 != 0) {
          std::fprintf(stderr, "--sizes: '%s' is not a byte count divisible by 4\n",
                       std::string(part).c_str());
          return 2;
        }
        sizes.push_back(bytes);
      }
    } else {
      std::fprintf(stderr, "usage: %s [--out=results.json] [--sizes=65536,1048576,...]\n", argv[0]);
      return 2;
    }
  }
  return sluice::Main(argv[0], json_path, sizes);
}
